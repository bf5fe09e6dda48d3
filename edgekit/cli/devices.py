"""`edgekit devices`: the device profiles, and which one fits this machine."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    """List the device profiles (format, precision, threads, input size, each with its reason) and say which
    one fits this machine."""
    from edgekit.devices.profiles import PROFILES, describe_profile, describe_profiles, detect_device, get_profile

    detected = detect_device()
    if args.json:
        chosen = [get_profile(args.name)] if args.name else list(PROFILES.values())
        print(json.dumps({"detected": detected.to_dict(), "profiles": [p.to_dict() for p in chosen]}, indent=2))
    elif args.name:
        print(describe_profile(get_profile(args.name)))
    else:
        print(describe_profiles(detected))
    return 0


def add_parser(verbs) -> None:
    """Add `devices` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser("devices", help="list device profiles and detect this machine", description=run.__doc__)
    p.add_argument("name", nargs="?", help="show one profile in full, with the reason for each choice")
    p.add_argument("--json", action="store_true", help="print profiles and the detected machine as JSON")
    p.set_defaults(func=run)
