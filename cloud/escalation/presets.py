"""Named policy presets HR can start from: whole policy bodies (the format ``policy.parse`` reads, docs/escalation.md),
each with a note saying where its timeline comes from.

"休假到期未归岗（参考流程）" is the timeline of the seed article's case (an employee whose leave ended and who does
not come back): the first absent day a reminder SMS to the employee, the second a warning to HR, the third the
失联预警 with the 催告函 to the employee and the emergency contact (by e-mail, SMS and WeChat: WeCom here), then the
旷工通知书 once three days are 旷工, and after the seventh day the 解除劳动合同通知书 drafted for HR to confirm.

How the seventh day comes out of the policy: the 催告函 goes out on the third absent day and gives four days to
return (``deadlines.return_days``; served the same day by SMS and e-mail, so no post's days are allowed for:
``service_allowance_days`` 0), so its deadline is the end of the seventh day; the engine drafts the termination
only once the 催告函 was served and that deadline passed (docs/escalation.md, "The return deadline"). The seed
sends the 催告函 without an approval ("系统会自动完成") and has one HR person confirm the termination ("HR确认后
发送"), so ``gates`` says exactly that. The handbook's article and its adoption are left blank: HR fills in their
own (the notices refuse to go out without them).

A preset is a starting point, never published by itself: ``punchproof cloud policy-preset NAME`` prints it, and
with ``--publish`` publishes it as a new version (after the same checks as the policy page).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from cloud.escalation.policy import DEFAULT_BODY

SEED_LEAVE_END = "休假到期未归岗（参考流程）"


@dataclass(frozen=True)
class Preset:
    name: str  # shown to HR, zh-CN
    name_en: str
    note: str  # where the timeline comes from: zh-CN, then English
    body: dict[str, Any]

    def policy_body(self) -> dict[str, Any]:
        """A fresh copy of the body, to change and publish."""
        return copy.deepcopy(self.body)


def _seed_leave_end() -> dict[str, Any]:
    body = copy.deepcopy(DEFAULT_BODY)
    body["thresholds"] = {"consecutive_days": 3, "month_days": 5, "year_days": 10}  # 休假到期后3天未归岗，视为旷工
    body["ladder"] = [
        {  # 第1天发送提醒短信（“您的休假已于今日到期，请及时归岗”）
            "key": "L1",
            "level": 1,
            "after_days": 1,
            "notice": "reminder",
            "recipients": ["employee"],
            "channels": ["sms"],
        },
        {  # 第2天发送预警通知给HR
            "key": "L2",
            "level": 2,
            "after_days": 2,
            "notice": "warning",
            "recipients": ["hr"],
            "channels": ["email"],
        },
        {  # 第3天触发“失联预警”，《催告函》通过邮件、短信、微信发送给员工及紧急联系人
            "key": "L3",
            "level": 3,
            "after_days": 3,
            "notice": "cuigao",
            "recipients": ["employee", "emergency_contact"],
            "channels": ["sms", "email", "wecom"],
        },
        {  # 超过3天未归岗：生成《旷工通知书》，向员工发送
            "key": "L4",
            "level": 4,
            "after_days": 3,
            "notice": "kuanggong",
            "recipients": ["employee"],
            "channels": ["sms", "email"],
            "condition": "if_not_resolved",
        },
    ]
    body["gates"] = {"approve_cuigao": False, "termination_approvers": 1}
    # 催告函 on day 3, served that day (SMS, e-mail: no post to wait for) + 4 days: the end of day 7
    body["deadlines"] = {**body["deadlines"], "return_days": 4, "service_allowance_days": 0}
    body["termination"] = {"channels": ["sms", "email", "ems"]}  # 解除通知书：邮件、短信（并邮寄）
    return body


PRESETS: dict[str, Preset] = {
    SEED_LEAVE_END: Preset(
        name=SEED_LEAVE_END,
        name_en="leave ended, not back (reference timeline)",
        note="休假到期未归岗的参考流程：第1天短信提醒员工；第2天向人事预警；第3天失联预警，向员工及紧急联系人发出催告函"
        "（返岗期限4日）；连续3天旷工发出旷工通知书；第7天后生成解除劳动合同通知书草稿，人事确认后发送。"
        "请填写员工手册条款及其民主程序、公示记录后再发布。 / The seed's timeline for a leave that ended without "
        "return: day 1 an SMS reminder to the employee; day 2 a warning to HR; day 3 the 催告函 to the employee and "
        "the emergency contact (4 days to return); the 旷工通知书 at 3 days; after day 7 the termination draft, sent "
        "once HR confirms. Fill in the handbook's article, its adoption and publication before publishing.",
        body=_seed_leave_end(),
    ),
}


def find(name: str) -> Preset | None:
    """A preset by its Chinese or English name."""
    return next((p for p in PRESETS.values() if name in (p.name, p.name_en)), None)
