"""PutFunctionConcurrency, GetFunctionConcurrency and DeleteFunctionConcurrency.

A reservation is both a guarantee and a cap; the store checks the account-wide sum and writes
in one transaction, and the scheduler learns the new value before the API answers.
"""

from __future__ import annotations

from typing import Any

from lamina.api.catalog import catalog
from lamina.api.operations import Call, operation
from lamina.api.operations.functions import load
from lamina.errors import InvalidParameterValue
from lamina.store.api import LimitExceeded, NotFound


@operation("PutFunctionConcurrency")
async def put_function_concurrency(call: Call) -> dict[str, Any]:
    context = call.context
    record = await load(context, call.params["FunctionName"], allow_qualifier=False)
    value = call.params["ReservedConcurrentExecutions"]
    provisioned = sum(config.requested for config in
                      await context.db(catalog(context).provisioned.list, record.name))
    if value < provisioned:
        # Provisioned environments count against the reservation: it may not shrink below them.
        raise InvalidParameterValue(
            f"ReservedConcurrentExecutions ({value}) must be at least the function's total "
            f"provisioned concurrency ({provisioned}).")
    settings = context.settings
    max_total = settings.account_concurrency - settings.min_unreserved_concurrency
    try:
        await context.db(context.store.set_reserved_concurrency, record.name, value, max_total)
    except NotFound:
        raise context.naming.not_found(record.name) from None
    except LimitExceeded:
        raise InvalidParameterValue(
            "Specified ReservedConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of "
            f"[{settings.min_unreserved_concurrency}].") from None
    context.engine.set_reserved_concurrency(record.name, value)
    return {"ReservedConcurrentExecutions": value}


@operation("GetFunctionConcurrency")
async def get_function_concurrency(call: Call) -> dict[str, Any]:
    context = call.context
    record = await load(context, call.params["FunctionName"], allow_qualifier=False)
    value = await context.db(context.store.get_reserved_concurrency, record.name)
    return {} if value is None else {"ReservedConcurrentExecutions": value}


@operation("DeleteFunctionConcurrency")
async def delete_function_concurrency(call: Call) -> dict[str, Any]:
    context = call.context
    record = await load(context, call.params["FunctionName"], allow_qualifier=False)
    try:
        await context.db(context.store.set_reserved_concurrency, record.name, None, 0)
    except NotFound:
        raise context.naming.not_found(record.name) from None
    context.engine.set_reserved_concurrency(record.name, None)
    return {}
