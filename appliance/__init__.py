"""The Raspberry Pi appliance: reads the terminals, signs and stores each punch, shows the
plant's pages, and forwards the signed log to the cloud.

Grouped by what each part owns, top to bottom (a group imports only those below it): ``admin``;
``runtime`` | ``web``; ``attendance`` | ``sync``; ``capture`` | ``roster``; ``rules``. The modules
at this root (clock, config, identity, idmap, malloc, store, timesync) are shared by every group."""
