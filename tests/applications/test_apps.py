"""The applications inside the guest, used from the host: web page, API, database.

A real guest serves each test: its web server and API through a port
forward bound to 127.0.0.1, its database through the guest agent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kit
from kit.applications import apps
from kit.core.errors import GuestError
from tests.conftest import free_port

pytestmark = pytest.mark.guest


@pytest.fixture
def shop(image: object) -> Iterator[kit.Guest]:
    with kit.Guest("apps-test", forwards={free_port(): 80}, replace=True) as guest:
        yield guest


def test_the_web_page_is_served_to_the_host(shop: kit.Guest) -> None:
    page = apps.web_page(shop)
    assert page.status == 200 and page.content_type == "text/html"
    assert "inside the guest" in page.body


def test_the_api_lists_its_tables(shop: kit.Guest) -> None:
    reply = apps.api(shop)
    assert reply.status == 200 and reply.content_type == "application/json"
    assert reply.json()["tables"] == list(apps.TABLES)


def test_the_api_answers_json_rows_from_the_database(shop: kit.Guest) -> None:
    reply = apps.api(shop, "items")
    assert reply.ok and reply.content_type == "application/json"
    items = reply.json()
    assert [row["name"] for row in items][:2] == ["USB cable", "Keyboard"]
    one = apps.api(shop, "orders", 2).json()
    assert one == {"id": 2, "item_id": 1, "quantity": 3, "customer": "linus"}


@pytest.mark.parametrize("table", ["users", "items; DROP TABLE items", "sqlite_master", ""])
def test_a_table_not_allowed_is_refused_with_json(shop: kit.Guest, table: str) -> None:
    path = apps.api_path(table) if table else apps.API_PATH + "?table="
    reply = apps.fetch(apps.host_port(shop), path)
    if table:
        assert reply.status == 400, reply
        assert "error" in reply.json() and reply.content_type == "application/json"
    assert len(apps.query(shop, "SELECT id FROM items")) == 4  # nothing was dropped


def test_a_row_id_that_is_not_a_number_is_refused(shop: kit.Guest) -> None:
    reply = apps.fetch(apps.host_port(shop), apps.API_PATH + "?table=items&id=1%20OR%201=1")
    assert reply.status == 400 and "whole number" in reply.json()["error"]
    assert apps.api(shop, "items", 99).status == 404


def test_the_database_answers_through_the_guest_agent(shop: kit.Guest) -> None:
    rows = apps.query(shop, "SELECT name, stock FROM items WHERE id = 4")
    assert rows == [{"name": "Monitor", "stock": 4}]
    raw = shop.run(f"sqlite3 {apps.DATABASE} 'SELECT count(*) FROM orders'")
    assert raw.ok and raw.stdout.strip() == "3"


def test_the_diagram_knows_the_api(shop: kit.Guest) -> None:
    from kit.view import picture

    (service,) = picture.guest_snapshot(shop).services
    assert service.name == apps.WEB_AND_API and service.host_port == apps.host_port(shop)


def test_no_forward_means_a_shut_door(image: object) -> None:
    guest = kit.Guest("apps-closed")  # never started: nothing to reach
    with pytest.raises(GuestError, match="door is shut"):
        apps.web_page(guest)
