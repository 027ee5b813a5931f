"""A fake Label Studio: what ``cincer_service.service.label_studio`` calls of Label
Studio's REST API (``RestClient``), in memory; ``down = True`` makes every call fail as an
unreachable server would."""
import itertools

from cincer_service.service import label_studio
from cincer_service.service.label_studio import LabelStudioUnavailable


class FakeLabelStudio:
    """What the integration calls of Label Studio, in memory."""

    ids = itertools.count(1000)

    def __init__(self, project: int, label_config: str):
        self.projects, self.hooks, self.tasks_by_id, self.down = {}, [], {}, False
        self.projects[project] = {"title": "connected", "label_config": label_config}
        self.main = project

    def _check(self):
        if self.down:
            raise LabelStudioUnavailable("Label Studio at http://fake is unreachable")

    def create_project(self, title, label_config):
        self._check()
        pid = next(self.ids)
        self.projects[pid] = {"title": title, "label_config": label_config}
        return pid

    def webhooks(self, project):
        self._check()
        return [h for h in self.hooks if h["project"] == project]

    def create_webhook(self, project, url, headers):
        self._check()
        self.hooks.append({"id": next(self.ids), "project": project, "url": url,
                           "headers": headers, "send_for_all_actions": False})

    def update_webhook(self, webhook_id, headers):
        self._check()
        hook = next(h for h in self.hooks if h["id"] == webhook_id)
        hook.update(headers=headers, send_for_all_actions=False)

    def create_task(self, project, data, predictions):
        self._check()
        tid = next(self.ids)
        self.tasks_by_id[tid] = {"id": tid, "project": project, "data": data,
                                 "predictions": predictions, "annotations": []}
        return tid

    def users(self):
        self._check()
        return [{"id": 3, "email": "three@example.com"}]

    def task(self, task_id):
        self._check()
        return self.tasks_by_id.setdefault(task_id, {"id": task_id, "project": self.main, "data": {},
                                                     "annotations": []})

    def update_task_data(self, task_id, data):
        self._check()
        self.tasks_by_id[task_id]["data"] = data

    def delete_task(self, task_id):
        self._check()
        self.tasks_by_id.pop(task_id, None)

    def tasks(self, project):
        self._check()
        return [t for t in list(self.tasks_by_id.values()) if t["project"] == project]

    def review_tasks(self):
        return [t for t in self.tasks_by_id.values() if label_studio.QUERY_FIELD in t["data"]]
