"""Rotating the cluster CA without a broken handshake: `pki rotate-ca`, then re-issue, then `pki retire-ca`.

1. ``rotate-ca`` makes a new CA under a new name beside the old one; the old stays trusted. Every bundle
   made from now on carries both CA certificates, so a node that installs one trusts old and new.
2. Once every node has installed such a bundle, each host is re-issued under the new CA (``pki list`` shows
   what is left) and gets a new bundle.
3. ``retire-ca`` ends the rotation once nothing staged is signed by the old CA: bundles made after it carry
   the new CA only, and installing one removes the old CA file that an earlier bundle put on the node.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

from sslreconciler.cluster.staging import default_ca_name, find_ca, list_hosts
from sslreconciler.cluster.stagingroot import staged_dir
from sslreconciler.fsio import atomic_write_at
from sslreconciler.model.errors import CommandError
from sslreconciler.pki.carecord import CARecord, read_record, valid_ca_name, write_record
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, key_pem, make_ca


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")


def rotate_ca(staging: Path, name: str | None, days: int, key_type: KeyType) -> str:
    """Start a rotation: a new CA that signs from now on, the old one still trusted. What was done."""
    old = find_ca(staging)
    record = read_record(staging)
    if record is not None and record.previous:
        raise CommandError(
            f"{staging}: a rotation from {record.previous} to {record.current} is under way; finish it first "
            f"(`sslreconciler pki retire-ca --staging {staging} {record.previous}`)"
        )
    new = valid_ca_name(name) if name else f"{default_ca_name()}-{_stamp()}"
    taken = {old.name, *(record.retired if record else ())}
    if new in taken or (staging / f"{new}.crt").exists() or (staging / f"{new}.key").exists():
        raise CommandError(f"{staging}: the CA name {new} is taken; give another --name")
    key = generate_key(key_type)
    cert = make_ca(new, key, days)
    with staged_dir(staging) as fd:
        atomic_write_at(fd, f"{new}.key", key_pem(key), 0o600)
        atomic_write_at(fd, f"{new}.crt", cert_pem(cert), 0o644)
        write_record(fd, CARecord(new, old.name, record.retired if record else ()))
    return (
        f"{staging / (new + '.crt')}: new cluster CA made ({key_type}, {days} days); it signs from now on and "
        f"{old.name} stays trusted.\n"
        "Next: 1) make a bundle for every host and install it on its node (the bundles carry both CAs, the "
        "hosts keep their certificates); 2) then re-issue each host (`pki issue --renew`, and `--renew --web` "
        "for web pairs), make its bundle and install it (`pki list` shows what is left); 3) then "
        f"`sslreconciler pki retire-ca --staging {staging} {old.name}` and install a bundle on every node again."
    )


def retire_ca(staging: Path, name: str) -> str:
    """End a rotation: ``name`` is no longer trusted by bundles made from now on. What was done."""
    record = read_record(staging)
    if record is None or record.previous is None:
        raise CommandError(f"{staging}: no CA rotation is under way (start one with `pki rotate-ca`)")
    if name == record.current:
        raise CommandError(f"{name} is the current CA; retire the old one, {record.previous}")
    if name != record.previous:
        raise CommandError(f"{name}: not the CA being rotated out ({record.previous})")
    left = [f"{r['host']}{' --web' if r.get('web') else ''}" for r in list_hosts(staging) if r.get("ca") == name]
    if left:
        raise CommandError(
            f"{staging}: still signed by {name}: {', '.join(left)}; re-issue them first "
            "(`pki issue --renew HOST`, `--web` for a web pair), install their bundles, then retire"
        )
    stamp = _stamp()
    with staged_dir(staging) as fd:
        for suffix in (".key", ".crt"):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{name}{suffix}", f"{name}{suffix}.retired-{stamp}", src_dir_fd=fd, dst_dir_fd=fd)
        write_record(fd, CARecord(record.current, None, (*record.retired, name)))
    return (
        f"{staging}: {name} retired (its files kept as *.retired-{stamp}); bundles now carry {record.current} only. "
        f"Install a new bundle on every node: that removes {name} from its authorities/."
    )
