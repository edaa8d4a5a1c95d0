"""The Countries page (issue 17) without a browser: list, search, add, change, remove, refusals."""

from __future__ import annotations

from pathlib import Path

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from pbxfw.usecases.geo import GeoService
from pbxfw.usecases.sites import SiteService
from tests.web.conftest import TestClient
from tests.web.test_pages import log_in


def test_rules_are_added_searched_changed_and_removed(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    token = log_in(client)
    page = client.get("/countries")
    assert page.status_code == 200
    assert "no country database" in page.text  # the warning at the top
    data = tmp_path / "c.csv"
    data.write_text("198.51.100.0/24,DE\n")
    GeoService(store).import_file(data, now=1_796_428_800.0, built="2026-05-01")
    form = {"csrf_token": token, "name": "DACH", "codes": "de, at, ch", "svc_sip": "allow"}
    answer = client.post("/countries", data=form)
    assert answer.status_code == 200 and "Country rule “DACH” added." in answer.text
    assert '<span class="badge badge-code">DE</span>' in answer.text
    assert "days old (over 180)" in answer.text  # 2026-05-01 is old
    client.post(
        "/countries",
        data={"csrf_token": token, "name": "Elsewhere", "codes": "*", "svc_sip": "block"},
    )
    searched = client.get("/countries", params={"q": "de"}).text
    assert '<th scope="row" data-label="Rule">DACH</th>' in searched
    assert 'data-label="Rule">Elsewhere</th>' not in searched
    rules = ConfigService(store).country_rules()
    dach = rules[0]
    edit = {"csrf_token": token, "codes": "DE,AT,CH,LI", "svc_sip": "allow", "svc_ssh": "block"}
    answer = client.post(f"/countries/{dach.id}/edit", data=edit)
    assert answer.status_code == 200 and "saved" in answer.text
    changed = ConfigService(store).country_rules()[0]
    assert changed.codes == ("AT", "CH", "DE", "LI")
    assert {k: v.value for k, v in changed.services.items()} == {"sip": "allow", "ssh": "block"}
    answer = client.post(f"/countries/{rules[1].id}/delete", data={"csrf_token": token})
    assert "removed" in answer.text
    assert [r.name for r in ConfigService(store).country_rules()] == ["DACH"]


def test_refusals_are_422_next_to_the_field_and_store_nothing(
    client: TestClient, store: Store
) -> None:
    token = log_in(client)
    client.post("/countries", data={"csrf_token": token, "name": "DACH", "codes": "DE"})
    answer = client.post("/countries", data={"csrf_token": token, "name": "X", "codes": "DE,XX"})
    assert answer.status_code == 422
    assert 'id="new_codes-error"' in answer.text and "&#39;XX&#39; is not an ISO" in answer.text
    dach = ConfigService(store).country_rules()[0]
    answer = client.post(f"/countries/{dach.id}/edit", data={"csrf_token": token, "codes": "QQ"})
    assert answer.status_code == 422 and "Nothing was saved: codes:" in answer.text
    forged = client.post(f"/countries/{dach.id}/delete", data={"csrf_token": "nope"})
    assert forged.status_code == 403
    assert [r.codes for r in ConfigService(store).country_rules()] == [("DE",)]


def test_the_page_works_on_the_chosen_site(client: TestClient, store: Store) -> None:
    # The rules are a site's configuration: the page reads and writes the
    # site of the header's selector (it used to work on the server's own site).
    SiteService(store).add("hq")
    token = log_in(client)
    form = {"csrf_token": token, "site": "hq", "name": "DACH", "codes": "DE", "svc_sip": "allow"}
    answer = client.post("/countries", data=form)
    assert answer.status_code == 200 and "Country rule “DACH” added." in answer.text
    assert [r.name for r in ConfigService(store, site="hq").country_rules()] == ["DACH"]
    assert ConfigService(store).country_rules() == []
    assert 'data-label="Rule">DACH</th>' in client.get("/countries", params={"site": "hq"}).text
    assert 'data-label="Rule">DACH</th>' not in client.get("/countries?site=default").text
