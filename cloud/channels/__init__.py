"""Outbound channels with delivery evidence: e-mail, SMS (Aliyun, Tencent Cloud), WeCom, DingTalk, and tasks
for a person (voice call, EMS registered mail).

Every channel speaks one small interface (``base.Channel``); ``dispatch.Dispatcher`` chooses the channel,
applies the idempotency key and writes every attempt into the contact log (``contact_log``).
"""
