"""The hook's project and task calls against a real Label Studio: what the review operator's retries rely on."""

from __future__ import annotations

import uuid

import pytest

from rekfeedback.core import label_studio as lsfmt

pytestmark = pytest.mark.labelstudio


def test_ensure_project_creates_once_and_sets_what_changed(ls_hook):
    title = f"hook {uuid.uuid4().hex[:12]}"
    config = lsfmt.labeling_config(["circle", "square"], "boxes")
    first, created = ls_hook.ensure_project(title, config, "first try", maximum_annotations=1)
    assert created and first["title"] == title
    # A retry finds it by title; only the field that differs is sent.
    again, created = ls_hook.ensure_project(title, config, "second try", maximum_annotations=3)
    assert not created and again["id"] == first["id"] and again["maximum_annotations"] == 3
    assert ls_hook.get_project(first["id"])["maximum_annotations"] == 3
    assert ls_hook.get_project(first["id"])["description"] == "first try"  # a found project keeps its own
    assert [p["id"] for p in ls_hook.list_projects() if p["title"] == title] == [first["id"]]


def test_task_ids_by_data_key(ls_hook):
    project, _ = ls_hook.ensure_project(f"hook {uuid.uuid4().hex[:12]}", lsfmt.labeling_config(["a"], "boxes"))
    refs = [f"s3://bucket/img-{i}.png" for i in range(3)]
    ls_hook.import_tasks(project["id"], [{"data": {"image": "http://x/i.png", lsfmt.SOURCE_KEY: r}} for r in refs])
    ls_hook.import_tasks(project["id"], [{"data": {"image": "http://x/i.png", lsfmt.SOURCE_KEY: refs[0]}}])
    ids = ls_hook.task_ids(project["id"], lsfmt.SOURCE_KEY)
    assert sorted(ids) == refs and len(set(ids.values())) == 3
    every = sorted(t["id"] for t in ls_hook.list_tasks(project["id"], fields="task_only")
                   if t["data"][lsfmt.SOURCE_KEY] == refs[0])
    assert ids[refs[0]] == every[0]  # the first task when a retry imported one twice


def test_import_missing_imports_each_image_once_across_retries(ls_hook):
    project, _ = ls_hook.ensure_project(f"hook {uuid.uuid4().hex[:12]}", lsfmt.labeling_config(["a"], "boxes"))
    refs = [f"s3://bucket/img-{i}.png" for i in range(5)]
    built = []

    def task_for(ref):
        built.append(ref)
        return {"data": {"image": "http://x/i.png", lsfmt.SOURCE_KEY: ref}}

    first = ls_hook.import_missing(project["id"], refs[:3], task_for, data_key=lsfmt.SOURCE_KEY, chunk_size=2)
    assert sorted(first) == refs[:3] and built == refs[:3]
    # The retry asks for all five: only the two missing are built and imported.
    ids = ls_hook.import_missing(project["id"], refs, task_for, data_key=lsfmt.SOURCE_KEY, chunk_size=2)
    assert built == refs and sorted(ids) == refs and {k: ids[k] for k in first} == first
    assert len(ls_hook.list_tasks(project["id"], fields="task_only")) == 5
