"""Personalised copy (千人千面) for live rooms: pre-show warm-up, in-show prompts and post-show recall per
viewer or segment and channel, checked by `agent.compliance`; batch campaigns; A/B tests with CTR/CVR;
push timing. See docs/copy.md.

    copywriting.api.router       FastAPI router (POST /api/copy, /api/campaigns/{id}/generate, /api/experiments…)
    liveroom.commands.copy.copy_command `liveroom copy`
    liveroom.commands.copy.ab_app       `liveroom ab …`
    liveroom.commands.copy.campaign_app `liveroom campaign …`
"""
