"""Upload a built folder to the hub: `create_repo(exist_ok=True)`, then `upload_folder`.

Only the files the folder's list names are sent (see `hub_folder`), and every other file in
the repo (or branch) is deleted in the same commit, so it then holds exactly this dataset: rows
dropped or refused since an earlier publish do not stay published. The hub's `.gitattributes`
stays (`upload_folder` never deletes it).

Re-running resumes an interrupted upload: the hub skips files it already holds (by content
hash) and the client uploads only what is missing. The token comes from `HF_TOKEN` or the
user's `hf auth login`; it is never printed, logged or put in an error message.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.export.hub_folder import listed_files
from pipeline.export.rows import ExportError


class PublishError(RuntimeError):
    """The upload failed; the message says why, without the token."""


@dataclass(frozen=True)
class Uploaded:
    url: str
    commit: str | None
    endpoint: str
    token_source: str  # "HF_TOKEN" or "login", never the token


def _token() -> tuple[str, str]:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no hub token: set HF_TOKEN or run `hf auth login` (or use --dry-run)")
    source = "HF_TOKEN" if os.environ.get("HF_TOKEN") else "login"
    return token, source


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def upload(
    folder: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
) -> Uploaded:
    """Send the listed files of `folder`; the repo (or `revision`) then holds exactly them."""
    from huggingface_hub import HfApi

    try:
        files = listed_files(folder)
    except ExportError as error:
        raise PublishError(str(error)) from None
    missing = [name for name in files if not (Path(folder) / name).is_file()]
    if missing:
        raise PublishError(f"{Path(folder) / missing[0]}: listed but missing; build it again")
    token, source = _token()
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            revision=revision,
            allow_patterns=[glob.escape(name) for name in files],  # each listed file, no other
            delete_patterns="*",
            commit_message="Publish with vaglio",
        )
    except Exception as error:  # HTTP, connection and validation errors alike: one clean line
        message = _scrub(f"{type(error).__name__}: {error}", token)
        raise PublishError(f"upload to {api.endpoint} failed: {message}") from None
    return Uploaded(str(repo), getattr(commit, "oid", None), api.endpoint, source)
