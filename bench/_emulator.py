"""The Cognito emulator the end-to-end benches run against, in a process of its own.

    .venv/bin/python bench/_emulator.py --pool big=20000 [--pool empty=0] [--fast-list]
                                        [--latency 0.1 --quota 30]

It starts moto's server in-process (`ThreadedMotoServer` on 127.0.0.1), creates each pool
through the API and seeds its users straight into moto's backend (`CognitoIdpUser` objects in
the pool's dict: a million users in seconds, where AdminCreateUser over HTTP would take
hours). Usernames are `user0000000`, `user0000001`, ... (`usernames(n)`), each with an email;
moto gives each a random `sub`. With `--latency`/`--quota` the fault proxy of
`tests/peers/cognito_proxy.py` sits in front of moto in this same process, adding that delay
to every request and answering TooManyRequestsException above that many requests in any
one-second window, as Cognito does.

It prints one JSON line, `{"moto": URL, "endpoint": URL, "pools": {name: {"id", "arn"}}}`
(`endpoint` is the proxy's when there is one), then serves until its stdin closes. On stdin,
`stats` answers a JSON line with the proxy's counts (requests, throttled, the most requests
seen in one second) and `reset` clears them.

`--fast-list` replaces moto's `list_users` in this process only. moto copies the pool's users
into a list, filters the whole list and then walks it to the token's user, on every page:
O(pool) per page, so a 1M-user scan (16,667 pages) would take hours and a 20,000-user one
spends more in moto than in the latency Cognito is emulated with. The replacement filters
each (pool, filter) once into a list with a user-id -> position index, then slices: the same
users in the same order, the same tokens (moto's own `Paginator` builds them), the same
error for a token that names no user; `check_fast_list` holds it to moto's on a pool. The
index is rebuilt when the pool's size changes; the benches do not change pools while
scanning.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto.backends import get_backend
from moto.cognitoidp import models as cognito_models
from moto.cognitoidp.models import CognitoIdpUser
from moto.cognitoidp.utils import PAGINATION_MODEL
from moto.core.exceptions import InvalidToken
from moto.server import ThreadedMotoServer
from moto.utilities.paginator import Paginator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.peers

REGION = "us-west-2"
DUMMY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def usernames(n: int) -> list[str]:
    """The usernames a pool seeded with `n` users holds."""
    return [f"user{i:07d}" for i in range(n)]


def seed(pool_id: str, n: int) -> None:
    backend = get_backend("cognito-idp")[_account(pool_id)][REGION]
    users = backend.user_pools[pool_id].users
    for name in usernames(n):
        users[name] = CognitoIdpUser(
            pool_id, name, None, "CONFIRMED", [{"Name": "email", "Value": f"{name}@example.com"}]
        )


def _account(pool_id: str) -> str:
    accounts = get_backend("cognito-idp")
    return next(a for a in accounts if pool_id in accounts[a][REGION].user_pools)


_MOTO_LIST_USERS = cognito_models.CognitoIdpBackend.list_users


def _fast_list_users() -> Callable[..., tuple[list[Any], str | None]]:
    filtered = _MOTO_LIST_USERS.__wrapped__  # moto's body, without its paginator
    config = PAGINATION_MODEL["list_users"]
    cache: dict[tuple[str, str | None], tuple[int, list[Any], dict[str, int]]] = {}

    def list_users(
        self: Any,
        user_pool_id: str,
        filt: str | None,
        limit: int | None = None,
        pagination_token: str | None = None,
    ) -> tuple[list[Any], str | None]:
        size = len(self.describe_user_pool(user_pool_id).users)
        entry = cache.get((user_pool_id, filt))
        if entry is None or entry[0] != size:
            users = filtered(self, user_pool_id, filt)
            entry = (size, users, {user.id: i for i, user in enumerate(users)})
            cache[(user_pool_id, filt)] = entry
        _, users, index = entry
        # The paginator moto's decorator builds for this call (list_users gets no keyword
        # arguments but the token and limit, so it checks an empty parameter set).
        paginator = Paginator(
            max_results=limit,
            max_results_default=config["limit_default"],
            starting_token=pagination_token,
            unique_attribute=config["unique_attribute"],
            param_values_to_check={},
        )
        start = 0
        if pagination_token:
            parsed = paginator._parsed_token
            start_at = index.get(parsed["uniqueAttributes"]) if parsed else None
            if start_at is None:
                raise InvalidToken("Resource not found!")
            start = start_at
        end = min(start + paginator._max_results, len(users))
        page = users[start:end]
        token = paginator._build_next_token(users[end]) if page and end < len(users) else None
        return page, token

    return list_users


def install_one_signing_key() -> None:
    """moto builds every pool's JWT signing key from the same file, recovering its RSA primes
    each time: ~0.5 s a pool, an hour for the 5,000 pools of bench/manybridges.py. Build it
    once (this process only; the benches never sign tokens)."""
    rsa_key = cognito_models.jwk.RSAKey
    original = rsa_key.import_key
    built: dict[str, Any] = {}

    def import_key(value: Any, *args: Any, **kwargs: Any) -> Any:
        key = json.dumps([value, args, kwargs], sort_keys=True, default=str)
        if key not in built:
            built[key] = original(value, *args, **kwargs)
        return built[key]

    rsa_key.import_key = staticmethod(import_key)


def install_fast_list() -> None:
    cognito_models.CognitoIdpBackend.list_users = _fast_list_users()  # type: ignore[method-assign]


def check_fast_list(client: Any, pool_id: str, filters: list[str | None]) -> int:
    """Scan `pool_id` with moto's list_users and with the fast one, page by page, for each
    filter; raise AssertionError on the first difference. Returns the pages compared."""
    pages = 0
    for filt in filters:
        results = []
        for implementation in (_MOTO_LIST_USERS, _fast_list_users()):
            cognito_models.CognitoIdpBackend.list_users = implementation  # type: ignore[method-assign]
            try:
                results.append(_all_pages(client, pool_id, filt))
            finally:
                cognito_models.CognitoIdpBackend.list_users = _MOTO_LIST_USERS  # type: ignore[method-assign]
        assert results[0] == results[1], f"fast list_users differs (filter {filt!r})"
        pages += len(results[0])
    return pages


def _all_pages(client: Any, pool_id: str, filt: str | None) -> list[tuple[list[str], str]]:
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": 7}
    if filt:
        kwargs["Filter"] = filt
    pages = []
    while True:
        answer = client.list_users(**kwargs)
        token = answer.get("PaginationToken", "")
        pages.append(([u["Username"] for u in answer["Users"]], token))
        if not token:
            return pages
        kwargs["PaginationToken"] = token


def start(
    pools: dict[str, int], *, fast_list: bool, latency: float, quota: float | None
) -> tuple[ThreadedMotoServer, Any, dict[str, Any]]:
    """moto (and the proxy when asked), the pools created and seeded; the JSON line's dict."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    if fast_list:
        install_fast_list()
    install_one_signing_key()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    client = boto3.client("cognito-idp", region_name=REGION, endpoint_url=moto_url, **DUMMY)
    info: dict[str, Any] = {"moto": moto_url, "endpoint": moto_url, "pools": {}}
    for name, count in pools.items():
        pool = client.create_user_pool(PoolName=name)["UserPool"]
        seed(pool["Id"], count)
        info["pools"][name] = {"id": pool["Id"], "arn": pool["Arn"], "users": count}
    client.close()
    proxy = None
    if latency or quota:
        from tests.peers.cognito_proxy import CognitoProxy

        proxy = CognitoProxy(moto_url).start()
        proxy.latency = latency
        proxy.max_rps = quota
        info["endpoint"] = proxy.endpoint
    return server, proxy, info


def proxy_stats(proxy: Any) -> dict[str, int]:
    if proxy is None:
        return {"requests": 0, "throttled": 0, "max_per_second": 0}
    return {
        "requests": proxy.count("ListUsers"),
        "throttled": proxy.count("ListUsers", "TooManyRequestsException"),
        "max_per_second": proxy.observed_max_rate,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", action="append", default=[], help="NAME=USERS (repeatable)")
    parser.add_argument("--fast-list", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--quota", type=float, help="requests/s above which to throttle")
    args = parser.parse_args()
    pools = {name: int(count) for name, count in (p.split("=") for p in args.pool)}
    server, proxy, info = start(
        pools, fast_list=args.fast_list, latency=args.latency, quota=args.quota
    )
    print(json.dumps(info), flush=True)
    lock = threading.Lock()
    try:
        for line in sys.stdin:
            with lock:
                if line.strip() == "reset" and proxy is not None:
                    proxy.reset_stats()
                print(json.dumps(proxy_stats(proxy)), flush=True)
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
