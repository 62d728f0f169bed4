"""GetAccountSettings: the account's limits and what it uses of them."""

from __future__ import annotations

from typing import Any

from lamina.api.code import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES
from lamina.api.operations import Call, operation

TOTAL_CODE_SIZE = 80 * 1024 * 1024 * 1024


@operation("GetAccountSettings")
async def get_account_settings(call: Call) -> dict[str, Any]:
    context = call.context
    reserved = await context.db(context.store.reserved_concurrency)
    function_count = 0
    code_size = 0
    after = None
    while True:
        page = await context.db(context.store.list_functions, after, 1000)
        if not page:
            break
        function_count += len(page)
        code_size += sum(record.code_size for record in page)
        after = page[-1].name
    limit = context.settings.account_concurrency
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            "CodeSizeZipped": MAX_ZIPPED_BYTES,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit - sum(reserved.values()),
        },
        "AccountUsage": {"TotalCodeSize": code_size, "FunctionCount": function_count},
    }
