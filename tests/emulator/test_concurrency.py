"""Many simultaneous creates: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio

import httpx

from flowservice_emulator import EmulatorServer

from .conftest import BASE, Api, profile_base_body


async def _create_all(server: EmulatorServer, headers: dict[str, str], count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(BASE + "/connections", json=profile_base_body(f"concurrent-{i}"), headers=headers)
                for i in range(count)
            )
        )


def test_200_concurrent_creates(server: EmulatorServer, api: Api) -> None:
    responses = asyncio.run(_create_all(server, api.headers(), 200))
    assert [r.status_code for r in responses] == [201] * 200
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 200
    assert api.get("/connections", {"count": "true"}).json() == {"count": 200}
    listed: set[str] = set()
    href: str | None = "/connections?limit=100"
    while href:
        body = api.get(href).json()
        listed |= {item["id"] for item in body["items"]}
        href = body.get("_links", {}).get("next", {}).get("href")
    assert listed == ids
    names = {item["name"] for item in api.http.get("/_emulator/state").json()["resources"]["connections"]["prod"]}
    assert names == {f"concurrent-{i}" for i in range(200)}


def test_concurrent_patches_with_the_same_etag_only_one_wins(server: EmulatorServer, api: Api) -> None:
    created = api.create("connections", profile_base_body())

    async def patch_all() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.patch(
                        f"{BASE}/connections/{created['id']}",
                        json=[{"op": "replace", "path": "/name", "value": f"n{i}"}],
                        headers={**api.headers(), "If-Match": created["etag"]},
                    )
                    for i in range(20)
                )
            )
        return [response.status_code for response in responses]

    statuses = asyncio.run(patch_all())
    assert sorted(statuses) == [200] + [412] * 19
