"""Local servers that speak the providers' real APIs (Aliyun and Tencent SMS, WeCom, DingTalk) for tests.

Each checks requests the way the provider does — signatures computed independently of our client code, timestamp
windows, tokens and their expiry, rate limits — answers with the provider's real response shapes and error
codes, and posts delivery reports to a callback URL like the provider's push.
"""
