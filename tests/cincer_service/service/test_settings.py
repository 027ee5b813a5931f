"""Settings read from the environment."""
from cincer_service.service import Settings


def test_environment_overrides_defaults_and_types():
    s = Settings.from_env({"CINCER_MAX_BATCH": "20", "CINCER_LEASE_SECONDS": "1.5",
                           "CINCER_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert (s.max_batch, s.lease_seconds, s.mode) == (20, 1.5, "celery")
    assert Settings.from_env({}).mode == "embedded"


def test_bare_postgresql_url_gets_the_installed_driver():
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which we do not install.
    for bare in ("postgresql://u@127.0.0.1:5432/db", "postgres://u@127.0.0.1:5432/db"):
        s = Settings.from_env({"CINCER_DATABASE_URL": bare})
        assert s.database == "postgresql+psycopg2://u@127.0.0.1:5432/db"
    explicit = "postgresql+psycopg2://u@h/db"
    assert Settings(database_url=explicit).database == explicit
    assert Settings(data_dir="/tmp/x").database == "sqlite:////tmp/x/cincer.db"
