"""pki writes private keys 0600, over an existing looser file and whatever the umask."""

import os
import stat
from pathlib import Path

from cqkd.sim.pki import create_local_pki


def test_pki_key_files_are_0600_over_loose_files_and_any_umask(tmp_path: Path) -> None:
    (tmp_path / "alice.key").write_text("old")
    os.chmod(tmp_path / "alice.key", 0o644)
    previous = os.umask(0o277)
    try:
        pki = create_local_pki(
            tmp_path,
            alice_kme_id="a",
            bob_kme_id="b",
            master_sae_id="m",
            slave_sae_id="s",
        )
    finally:
        os.umask(previous)
    for pair in (pki.alice, pki.bob, pki.master_sae, pki.slave_sae):
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600, pair.key
