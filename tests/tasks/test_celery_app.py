"""The Celery adapter's configuration, read from the service settings."""
from cincer_service.service import Settings
from tasks import celery_app as adapter


def test_a_pool_process_is_replaced_past_the_memory_setting():
    def conf(**settings):
        return adapter.make_celery(Settings(redis_url="redis://127.0.0.1:1/0", **settings)).conf
    assert conf().worker_max_memory_per_child == int(Settings().worker_max_memory_mb) * 1024
    assert conf(worker_max_memory_mb=1024).worker_max_memory_per_child == 1024 * 1024
    assert conf(worker_max_memory_mb=0).worker_max_memory_per_child is None
    env = Settings.from_env({"CINCER_WORKER_MAX_MEMORY_MB": "900"})
    assert env.worker_max_memory_mb == 900.0
