"""Logs at two levels through the root logger, whose level the runtime sets."""

import logging

logger = logging.getLogger()


def handler(event, context):
    logger.info("an info line")
    logger.warning("a warning line")
    return {"logged": True}
