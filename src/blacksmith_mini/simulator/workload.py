"""The workload generator: queues simulated jobs at a configurable rate (Poisson arrivals)."""

from __future__ import annotations

import asyncio
import logging
import random

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.simulator import state

log = logging.getLogger(__name__)
JOB_NAMES = ("build", "test", "lint", "integration", "deploy-preview", "e2e")


class Workload:
    def __init__(self, sim: state.SimState, config: settings_mod.SimulatorSettings) -> None:
        self.sim = sim
        self.config = config
        self.random = random.Random(config.seed)

    def queue_one(self) -> state.SimJob:
        config = self.config
        failed = self.random.random() < config.failure_ratio
        low, high = sorted((config.min_duration, config.max_duration))
        return self.sim.queue_job(
            repository=self.random.choice(self.sim.repositories),
            labels=self.random.choice(config.label_mix),
            duration=round(self.random.uniform(low, high), 1),
            conclusion="failure" if failed else "success",
            name=self.random.choice(JOB_NAMES),
        )

    async def run(self) -> None:
        if self.config.rate_per_min <= 0:
            return
        while True:
            await asyncio.sleep(self.random.expovariate(self.config.rate_per_min / 60.0))
            try:
                self.queue_one()
            except state.Missing as exc:
                log.warning("workload: %s", exc)
