"""Legal notices of the absence procedure (催告函, 旷工通知书, 解除通知书 draft, 解除证明, union letter, 公告):
versioned zh-CN templates rendered to a PDF with its Chinese font embedded and to a short SMS text with a link.

Every text here must be reviewed by a labour lawyer before a customer uses it (ESCALATION.md §3).
"""
