"""docs/contract.md is the published copy of the project's contract: it must not drift."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "CONTRACT.md"  # beside the checkout in this project's CI


@pytest.mark.skipif(not SHARED.exists(), reason="the project's shared folder is not beside this checkout")
def test_docs_contract_is_the_shared_contract():
    assert (ROOT / "docs" / "contract.md").read_text() == SHARED.read_text(), \
        "docs/contract.md differs from shared/CONTRACT.md: copy it again"
