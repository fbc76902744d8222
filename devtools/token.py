"""`make token`: a local JWT for calling the API, signed with the local HS256 secret."""

from __future__ import annotations

import argparse

from runtime.auth import Role, mint_token
from runtime.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customer", default="acme", help="tenant the token is for")
    parser.add_argument("--role", default="admin", choices=[r.value for r in Role])
    parser.add_argument("--subject", default="", help="token subject; default role@customer")
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    args = parser.parse_args()
    settings = Settings.from_env("token")
    subject = args.subject or f"{args.role}@{args.customer}"
    print(f"# {args.role} token for customer {args.customer!r}, valid {args.ttl} s:")
    print(
        mint_token(
            settings,
            subject=subject,
            customer=args.customer,
            role=Role(args.role),
            ttl_seconds=args.ttl,
        )
    )


if __name__ == "__main__":
    main()
