"""A deleted alias or version takes its resource policy along: a new one of the same name starts
with none."""

from __future__ import annotations

from typing import Any

import pytest
from support import create, function_zip


def test_alias_and_version_policies_go_with_them(lam: Any) -> None:
    name = create(lam, function_zip("hello"))
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    for qualifier in ("live", version):
        lam.add_permission(FunctionName=name, Qualifier=qualifier, StatementId="anyone",
                           Action="lambda:InvokeFunction", Principal="*")
        assert "anyone" in lam.get_policy(FunctionName=name, Qualifier=qualifier)["Policy"]
    lam.delete_alias(FunctionName=name, Name="live")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=name, Qualifier="live")
    lam.delete_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier=version)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=name, Qualifier=version)
