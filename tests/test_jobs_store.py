"""The job store: migrations, merchants and keys, the queue's state changes.

Each test runs on SQLite, and on PostgreSQL when PACKSHOT_TEST_POSTGRES_URL names a server
(`.ci/run` starts one): here is where the database's dialect matters (the migrations, column
types and time zones, the queue's compare-and-set), so the API's tests run on SQLite alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from api_support import ENV_POSTGRES, postgres_database
from packshot.jobs import store
from packshot.jobs.kinds import TrainingParams, TrainingResult
from packshot.jobs.models import Product


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[store.Database]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'packshot.db'}"
        else:
            if not os.environ.get(ENV_POSTGRES):
                pytest.skip(f"{ENV_POSTGRES} is not set (.ci/run sets it; see the README)")
            url = stack.enter_context(postgres_database())
        store.migrate(url)
        store.migrate(url)  # applying them twice changes nothing
        database = store.Database(url)
        yield database
        database.dispose()


def test_migrations_create_every_table(db: store.Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert {"merchants", "products", "photos", "jobs", "job_events", "shots"} <= tables
    assert {"webhook_deliveries", "web_sessions", "alembic_version"} <= tables
    assert {"rate_buckets", "stream_leases"} <= tables  # the limits every web process shares


def test_keys_are_stored_as_hashes_and_revocable(db: store.Database) -> None:
    with db.session() as session:
        merchant, key = store.create_merchant(session, "Acme")
        assert key.startswith(store.KEY_PREFIX)
        assert key not in (merchant.key_hash, merchant.key_prefix)
        assert store.merchant_for_key(session, key).id == merchant.id
        assert store.merchant_for_key(session, key[:-1] + "x") is None
        assert store.merchant_for_key(session, "nonsense") is None
        store.revoke_merchant(session, "Acme")
        assert store.merchant_for_key(session, key) is None


def test_queue_claims_cancels_and_requeues(db: store.Database) -> None:
    with db.session() as session:
        merchant, _ = store.create_merchant(session, "Acme")
        session.add(Product(id="prd_1", merchant_id=merchant.id, name="bag", class_name="bag"))
        session.commit()

        def enqueue():
            return store.enqueue(
                session,
                merchant_id=merchant.id,
                product_id="prd_1",
                kind="training",
                params=TrainingParams(photos_dir="/photos", model="tiny", class_word="bag"),
                request={},
                webhook=None,
                prefix="trn",
            )

        first, second = enqueue(), enqueue()
        claimed = store.claim_next(session, "w1")
        assert claimed.id == first.id and claimed.status == "running" and claimed.attempts == 1
        store.request_cancel(session, second)  # queued: canceled at once
        assert second.status == "canceled"
        with pytest.raises(store.JobConflict):
            store.request_cancel(session, second)
        assert store.claim_next(session, "w1") is None
        # The worker died: its running job goes back to the queue and is claimed again.
        assert store.requeue_running(session) == [first.id]
        again = store.claim_next(session, "w2")
        assert again.id == first.id and again.attempts == 2
        store.add_event(
            session,
            first.id,
            {
                "stage": "train",
                "done": 1,
                "total": 4,
                "message": "loss 0.1",
                "data": {"event": "step", "loss": 0.1},
            },
        )
        result = TrainingResult("model", "tiny", "sks", "bag", final_step=4, final_loss=0.1)
        store.finish(session, first.id, result)
        job = session.get(type(first), first.id)
        assert job.status == "succeeded" and job.progress["loss"] == 0.1
        assert [e.type for e in store.events_after(session, first.id, 0)] == ["step", "done"]


def test_webhooks_are_signed_and_retried_with_back_off(db: store.Database) -> None:
    import sys
    from datetime import timedelta

    sys.path.insert(0, str(Path(__file__).parent))

    from api_support import webhook_receiver
    from packshot.jobs.models import WebhookDelivery
    from packshot.jobs.webhooks import WebhookSender, verify

    with webhook_receiver() as receiver, db.session() as session:
        merchant, _ = store.create_merchant(session, "Acme")
        session.add(Product(id="prd_1", merchant_id=merchant.id, name="bag", class_name="bag"))
        session.commit()
        job = store.enqueue(
            session,
            merchant_id=merchant.id,
            product_id="prd_1",
            kind="training",
            params=TrainingParams(photos_dir="/photos", model="tiny", class_word="bag"),
            request={},
            webhook=receiver.url,
            prefix="trn",
        )
        receiver.fail_first = 1
        store.claim_next(session, "w1")  # job.started
        sender = WebhookSender(db, allow_private=True)  # the receiver is on loopback
        assert sender.send_due() == 1
        delivery = session.scalars(select(WebhookDelivery)).one()
        session.refresh(delivery)
        assert delivery.status == "pending" and delivery.attempts == 1
        assert delivery.last_error == "HTTP 500"
        wait = store.utc(delivery.next_attempt_at) - store.utc(delivery.created_at)
        assert wait >= timedelta(seconds=store.WEBHOOK_BACKOFF[0] - 1)
        assert sender.send_due() == 0  # not due yet
        delivery.next_attempt_at = store.now()
        session.commit()
        assert sender.send_due() == 1
        session.refresh(delivery)
        assert delivery.status == "sent" and delivery.attempts == 2
        (received,) = receiver.received
        assert received["json"]["type"] == "job.started"
        assert received["json"]["data"]["id"] == job.id
        assert received["headers"]["webhook-id"] == delivery.id
        assert verify(merchant.webhook_secret, received["headers"], received["body"])
        tampered = received["body"].replace(b"running", b"succeeded")
        assert not verify(merchant.webhook_secret, received["headers"], tampered)


def test_expired_and_revoked_sessions_are_deleted(db: store.Database) -> None:
    from datetime import timedelta

    from packshot.jobs.models import WebSession

    with db.session() as session:
        a, _ = store.create_merchant(session, "A")
        b, _ = store.create_merchant(session, "B")
        moment = store.now()
        session.add_all(
            [
                WebSession(id="old", merchant_id=a.id, csrf_token="x", expires_at=moment),
                WebSession(
                    id="new", merchant_id=a.id, csrf_token="x", expires_at=moment + timedelta(1)
                ),
                WebSession(
                    id="b", merchant_id=b.id, csrf_token="x", expires_at=moment + timedelta(1)
                ),
            ]
        )
        session.commit()
        assert store.purge_expired_sessions(session, at=moment) == 0  # not before its expiry
        assert store.purge_expired_sessions(session) == 1
        assert sorted(session.scalars(select(WebSession.id))) == ["b", "new"]
        store.revoke_merchant(session, a.id)  # a revoked key's browsers are signed out
        assert sorted(session.scalars(select(WebSession.id))) == ["b"]
