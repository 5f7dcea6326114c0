"""Which model a set of OpenAI-compatible replicas serves, asked once through ``/v1/models``.

Why before any request: an unreachable server or a wrong ``base_url`` should fail in one line before the
build loads prompts, and the card records the served id and revision (never a URL) from the listing.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .retry import Replica, classify_quietly

logger = logging.getLogger("hf_crossaug.backends.endpoint")  # one logger for the endpoint backend's messages


async def served_model(replicas: list[Replica], clients: dict, wanted: str | None, timeout: float,
                       pause: float) -> dict:
    """The ``/v1/models`` entry of the served model; replicas that do not answer are paused for ``pause`` s."""
    listings, errors = {}, []
    for replica in replicas:
        try:
            page = await asyncio.wait_for(clients[replica.url].models.list(), timeout)
            listings[replica.name] = [m.to_dict() for m in page.data]
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable now"
            errors.append(f"{replica.name} ({classify_quietly(exc)})")
            replica.down_until = time.monotonic() + pause
    if not listings:
        raise RuntimeError(f"endpoint unreachable: {'; '.join(errors)} — start the server or fix base_url")
    if errors:
        logger.warning("endpoint replicas unreachable at start, continuing without them: %s", "; ".join(errors))
    return pick_model(wanted, listings)


def pick_model(wanted: str | None, listings: dict[str, list[dict]]) -> dict:
    """``wanted`` as some replica lists it; without ``wanted``, the first listing's only (or first) model."""
    for name, models in listings.items():
        ids = [m.get("id") for m in models]
        if wanted is None:
            if not models:
                raise RuntimeError(f"endpoint {name} lists no models; set the generator model to the served id")
            if len(models) > 1:
                logger.warning("endpoint %s serves %d models, using %s (set model to choose)",
                               name, len(models), ids[0])
            return models[0]
        if wanted in ids:
            return models[ids.index(wanted)]
    logger.warning("no replica lists model %s in /v1/models; sending requests for it anyway", wanted)
    return {"id": wanted}
