"""Operator extra link to the turn's Label Studio project (the data manager, where people review)."""

from __future__ import annotations

from typing import ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

XCOM_KEY = "label_studio_project"


class LabelStudioProjectLink(BaseOperatorLink):
    """The project URL pushed by LabelStudioReviewOperator (connection extra `public_url` or its host)."""

    name: ClassVar[str] = "Label Studio project"
    key: ClassVar[str] = XCOM_KEY

    def get_link(self, operator, *, ti_key) -> str:
        try:
            value = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # a missing XCom must not break the task page
            return ""
        return (value or {}).get("url", "") if isinstance(value, dict) else ""

    @classmethod
    def persist(cls, context, operator, *, url: str, project_id: int, title: str) -> None:
        if not operator.do_xcom_push:
            return
        context["ti"].xcom_push(key=cls.key, value={"url": url, "project_id": project_id, "title": title})
