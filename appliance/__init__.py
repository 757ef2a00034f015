"""The Raspberry Pi appliance: reads the terminals, signs and stores each punch, shows the
plant's pages, and forwards the signed log to the cloud."""
