"""The database schema (one Alembic history serves SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class VmRow(Base):
    __tablename__ = "vms"

    vm_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    pool: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(200))
    labels: Mapped[list[str]] = mapped_column(JSON)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_since: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    ready_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, index=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    pid: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    death_reason: Mapped[str | None] = mapped_column(String(32))
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    runner_id: Mapped[int | None] = mapped_column(BigInteger)
    ran_job: Mapped[bool] = mapped_column(Boolean, default=False)
    host: Mapped[str | None] = mapped_column(String(64), index=True)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    run_id: Mapped[int] = mapped_column(BigInteger)
    run_attempt: Mapped[int] = mapped_column(Integer)
    repository: Mapped[str] = mapped_column(String(200))
    labels: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    conclusion: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(300))
    workflow_name: Mapped[str | None] = mapped_column(String(300))
    runner_name: Mapped[str | None] = mapped_column(String(100))
    html_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float | None] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    vm_requested_at: Mapped[float | None] = mapped_column(Float)
    vm_ready_at: Mapped[float | None] = mapped_column(Float)
    vm_id: Mapped[int | None] = mapped_column(Integer)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_vm", "vm_id"), Index("ix_events_job", "job_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    vm_id: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100), default="system")


class SampleRow(Base):
    __tablename__ = "metric_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    step_seconds: Mapped[int] = mapped_column(Integer)
    active_vms: Mapped[float] = mapped_column(Float)
    queued_jobs: Mapped[float] = mapped_column(Float)
    spawns: Mapped[float] = mapped_column(Float)
    deaths: Mapped[float] = mapped_column(Float)
    queue_to_start_p50: Mapped[float | None] = mapped_column(Float)
    queue_to_start_p95: Mapped[float | None] = mapped_column(Float)


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[float] = mapped_column(Float, index=True)
    processed_at: Mapped[float | None] = mapped_column(Float, index=True)
    payload: Mapped[str] = mapped_column(Text)


class ControlStateRow(Base):
    """Operator decisions that outlive a restart: draining, paused pools, pool limits."""

    __tablename__ = "control_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)


class HostRow(Base):
    """A host that runs VMs: its agent's token (hashed), what it reported, and its admin state."""

    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    admin_state: Mapped[str] = mapped_column(String(16), default="up")  # up/cordoned/draining
    session: Mapped[int] = mapped_column(Integer, default=0)  # +1 per agent hello: its fence
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # capacity, versions
    observations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # vm_id -> facts
    # +1 at every write of ``observations``: the loop reads again only the hosts whose moved
    observations_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_seen: Mapped[float | None] = mapped_column(Float)
    down_since: Mapped[float | None] = mapped_column(Float)
    down_reason: Mapped[str | None] = mapped_column(String(200))


class HostCommandRow(Base):
    """A command for a host's agent, persisted before it is sent, acknowledged by the agent."""

    __tablename__ = "host_commands"
    __table_args__ = (Index("ix_host_commands_host_acked", "host", "acked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(120), unique=True)  # kind:vm_id:attempt
    kind: Mapped[str] = mapped_column(String(16))
    vm_id: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    acked_at: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LeaseRow(Base):
    """Who leads the loop: a lease with a fencing token that grows with every new holder."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)
    renewed_at: Mapped[float] = mapped_column(Float)
