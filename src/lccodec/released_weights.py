"""Every weights file lic ever released: model, weights_id, SHA-256, lic version, git commit.

A .lic file records only the 4-byte weights_id of the weights that made it. This table lets the
decoder say which release shipped those weights and how to get them back
(``git show COMMIT:weights/MODEL.safetensors``), and lets :mod:`lccodec.weights_io` verify a
released file without a stored SHA-256 against the SHA-256 recorded here.

``sha256`` is :func:`lccodec.weights_io.weights_sha256` of the file (tensors and metadata, with
those of the part file it shares, ``shared``, if any).
``commit`` is the commit that added the file to ``weights/``; ``None`` means "the commit that adds
this row" (commit the weights and their row together). A new release is one row, added by
``python -m lccodec.train.rounds release weights/MODEL.safetensors`` (``make train-stop`` does it).
"""
from __future__ import annotations

from dataclasses import dataclass

#: The repository path of this table, as git sees it (the fallback how-to searches its history).
TABLE_PATH = "src/lccodec/released_weights.py"


@dataclass(frozen=True)
class Release:
    """One released weights file."""

    model: str
    weights_id: str  # 8 lowercase hex digits, as in a .lic header
    sha256: str | None  # weights_io.weights_sha256 of the file
    version: str  # the lic version that shipped it
    commit: str | None  # the git commit that added it to weights/ (None: the one adding this row)
    date: str
    shared: str | None = None  # the part file it names (weights_io: "Shared parts"), in the same commit

    @property
    def local_name(self) -> str:
        return f"{self.model}-{self.weights_id}.safetensors"

    def how_to_get(self) -> str:
        """The shell command that writes this weights file from a clone of the lic repository."""
        commit = self.commit or f"$(git log -1 --format=%h -S{self.weights_id} -- {TABLE_PATH})"
        command = f"git show {commit}:weights/{self.model}.safetensors > {self.local_name}"
        if self.shared:  # the part goes beside it, under its own name
            command += f" && git show {commit}:weights/{self.shared} > {self.shared}"
        return command

    def describe(self) -> str:
        """'lic 0.1.0, commit 122a72e' (where the release came from; no commit while the row
        is not yet committed with its weights)."""
        return f"lic {self.version}" + (f", commit {self.commit}" if self.commit else "")


RELEASES: tuple[Release, ...] = (
    # model, weights_id, sha256, lic version, commit, date
    Release("hyperprior", "c6fa5335", "d55a97ad44ccf21831b67038a089c434542efb89770fdbf1dcef99e501c25071", "0.1.0", "122a72e", "2026-11-23"),
    Release("hyperprior", "088f598e", "cd9b01121cd06eb6a6851381560423a68bae8d62b3281eefd4a4623db737c831", "0.1.0", "cffd684", "2026-11-23"),
    Release("context", "1b927a83", "864311930c1d52a1f5f2ea295ba36f0127623d696e91600fc4f9f59c7032e847", "0.1.0", "60610c4", "2026-11-23"),
    Release("hierarchical", "6a087262", "fb09fa265d6c9ad466f943ceedab3675660ddf5023ad7f98eb485188a37cff61", "0.1.0", "6e93906", "2026-11-23"),
    Release("coarse2fine", "43081eae", "690b3cae9cc9da5ea15b4b6054ca937f6d9851de3551bb478dc77ab8690848f7", "0.1.0", "6e93906", "2026-11-23"),
    Release("reference", "bd9edca9", "59b30a4ec5e58a7d98d22540d6cdb2f7f1de2d8397dc6e40727173551c3f4d72", "0.1.0", "069612f", "2026-11-23"),
    Release("hyperprior", "89cc621d", "89cc621d6e380174edf9352bbdeff0d06afbf129cbd1db16373e3ef9a7faa3fb", "0.1.0", "5869a73", "2026-12-03"),
    Release("context", "56de7056", "56de7056a9dce5e787d084b7494c15757cbadc4cd64f84f8b937a08b8e915efc", "0.1.0", "5620c8b", "2026-12-03"),
    Release("context", "a0f59810", "a0f59810f68b5fc6e16e8253d2a1b63483ec9634132891fdaf881260960cc6a1", "0.1.0", "c867573", "2026-12-03"),
    Release("reference", "6352155e", "6352155e1ce786a4ab76262e1efaa9d33d2bb0038daa748afaa9f54e6b125433", "0.1.0", "9916a27", "2026-12-03"),
    Release("hierarchical", "2c057013", "2c057013a4a824b2b18edc423e8c371e9cf101e9f145f9d452d8c98b07e19c44", "0.1.0", "63519b4", "2026-12-06"),
    Release("coarse2fine", "2ccabf79", "2ccabf79b57b44e4ff04eeb73e1c0d89e0ed8104dd1a6ccbc857d7984588f972", "0.1.0", "63519b4", "2026-12-06"),
    Release("reference", "e79766cf", "e79766cfb1dffea28911a2c9e6ccd8ded20e73a845a963d52b6db8d999b3db2f", "0.1.0", "8851d67", "2026-12-06"),
    Release("hierarchical", "88bba31f", "88bba31fcd725231a28afda7514bc20ea9702776de7eb39fffbde14a68edc81b", "0.1.0", "72a296f", "2026-12-07", "transforms-41ee4481.safetensors"),
    Release("coarse2fine", "26118b0e", "26118b0ea2d9b7b1e6910fb7f8f8c491347fa200862b79c14b8508a662411575", "0.1.0", "d3bf9a8", "2026-12-07", "transforms-41ee4481.safetensors"),
    Release("reference", "cc6d91aa", "cc6d91aaf90e02f7f535d2beabca18de32a7e177fa4613d1acd82e02ced87434", "0.1.0", "3631902", "2026-12-07", "transforms-41ee4481.safetensors"),
    Release("hyperprior", "14b13e50", "14b13e504c7a90099263441ad3ddd771f70c4a013b55c3f064ec79f7b023b18e", "0.1.0", "3631902", "2026-12-07", "transforms-41ee4481.safetensors"),
)  # new rows go above this line


def find_release(model: str | None, weights_id: int | str) -> Release | None:
    """The release of `model`'s weights with this id (an int or 8 hex digits), or None."""
    wid = f"{weights_id:08x}" if isinstance(weights_id, int) else str(weights_id).lower()
    return next((r for r in RELEASES if r.model == model and r.weights_id == wid), None)


def release_row(release: Release) -> str:
    """The source line of `release` in :data:`RELEASES`."""
    fields = (release.model, release.weights_id, release.sha256, release.version, release.commit, release.date)
    shared = () if release.shared is None else (release.shared,)
    return "    Release(" + ", ".join("None" if f is None else f'"{f}"' for f in (*fields, *shared)) + "),"
