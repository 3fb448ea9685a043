"""/console/ in real Chromium: each role sees only its sections (the health authority imports colours and sees no
mini-app review), and an operator gives a developer's organisation its namespace and approves its app id, reviews
the uploaded mini-app beside nothing (its first version), approves it, releases it to everyone, and makes an
enrolment code and a key pair for terminals, all through the page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import Browser, Page, expect
from yima_sdk import publish
from yima_sdk.pack import pack

from server.seed import DEMO_AUTHORITY_PHONE, DEMO_OPERATOR_PHONE, DEMO_RESIDENT_ID
from tests.browser.a11y import serious_violations
from tests.browser.conftest import DESKTOP, opened
from tests.conftest import random_phone
from tests.credentials.helpers import client_assertion, token_form
from tests.e2e._real import RealServer, eventually, release_app, sign_in, verified_resident
from tests.platform.conftest import new_app_id, write_probe


def b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def console_sign_in(page: Page, phone: str) -> None:
    """Under yima dev the page shows the code the console SMS sender "sent" (from the dev outbox)."""
    await page.get_by_label("手机号").fill(phone)
    await page.get_by_role("button", name="获取验证码").click()
    notice = page.get_by_text("开发环境验证码：")
    await expect(notice).to_be_visible()
    code = re.search(r"验证码：(\d+)", await notice.text_content() or "")
    assert code is not None
    await page.get_by_label("短信验证码").fill(code.group(1))
    await page.get_by_role("button", name="登录").click()


async def test_the_health_authority_sees_its_import_and_no_app_reviews(
    web: RealServer, browser: Browser
) -> None:
    async with opened(browser, web, "/console/#/reviews", size=DESKTOP) as tab:
        page = tab.page
        await console_sign_in(page, DEMO_AUTHORITY_PHONE)
        nav = page.get_by_role("navigation", name="功能")
        await expect(nav.get_by_role("link")).to_have_text(["健康状态导入"])
        # Asked for the reviews by address, it is shown what its role may use instead.
        await expect(page.get_by_role("heading", name="健康状态导入")).to_be_visible()
        await expect(page.get_by_text("小程序审核")).to_have_count(0)

        await page.get_by_label("或粘贴 CSV 内容").fill(
            f"{DEMO_RESIDENT_ID},green,recovered\n341822199001011231,purple\n"
        )
        await page.get_by_role("button", name="导入").click()
        await expect(page.locator("#main").get_by_text("生效 1 行，拒绝 1 行")).to_be_visible()
        await expect(page.locator(".errors li")).to_have_count(1)
        await expect(page.locator(".errors li")).to_contain_text("第 2 行")
        assert await serious_violations(page) == []
    assert tab.outside == [] and tab.errors == []


async def test_an_operator_approves_and_releases_an_app_and_makes_an_enrolment_code(
    web: RealServer, browser: Browser, tmp_path: Path
) -> None:
    developer = sign_in(web, role="developer")
    token = developer.post("/v1/developer/tokens").json()["token"]
    app_id = new_app_id("console")
    scene = f"console-clinic-{app_id.rsplit('.', 1)[-1]}"
    namespace = app_id.rpartition(".")[0]
    developer_id = developer.get("/v1/me").json()["id"]

    async with opened(browser, web, "/console/", size=DESKTOP) as tab:
        page = tab.page
        await console_sign_in(page, DEMO_OPERATOR_PHONE)
        nav = page.get_by_role("navigation", name="功能")
        await expect(nav.get_by_role("link", name="小程序审核")).to_have_attribute("aria-current", "page")
        await expect(nav.get_by_role("link", name="健康状态导入")).to_have_count(0)
        await expect(page.get_by_text("没有待审核的版本。")).to_be_visible()

        # The developer's organisation gets the namespace; the developer asks for the id; the operator approves.
        await nav.get_by_role("link", name="应用 ID 与开发者").click()
        org = page.get_by_role("region", name="新建开发者组织")
        await org.get_by_label("组织名称").fill(f"测试 {namespace}")
        await org.get_by_label("命名空间").fill(namespace)
        await org.get_by_label("开发者账号").fill(str(developer_id))
        await org.get_by_role("button", name="新建开发者组织").click()
        await expect(page.get_by_text(f"命名空间 {namespace}")).to_be_visible()
        assert publish.register(app_id, api=web.url, token=token).status == "pending"
        await nav.get_by_role("link", name="小程序审核").click()
        await nav.get_by_role("link", name="应用 ID 与开发者").click()
        request = page.get_by_role("region", name=app_id)
        await request.get_by_label("审核意见").fill("域名已核实")
        await request.get_by_role("button", name="批准").click()
        await expect(request).to_have_count(0)

        uploaded = publish.upload(pack(write_probe(tmp_path, app_id)), api=web.url, token=token)
        assert uploaded.status == "in_review"
        await nav.get_by_role("link", name="小程序审核").click()
        card = page.get_by_role("region", name=f"{app_id} 1.0.0")
        await expect(card).to_contain_text("（首个版本）")
        await expect(card.locator(".added").first).to_be_visible()  # every capability is new
        assert await serious_violations(page) == []
        await card.get_by_label("审核意见").fill("符合要求")
        await card.get_by_role("button", name="批准").click()
        await expect(card).to_have_count(0)

        await nav.get_by_role("link", name="小程序发布").click()
        await page.get_by_role("button", name=f"管理 {app_id}").click()
        await page.get_by_label("灰度比例 %").fill("100")
        await page.get_by_role("button", name="发布").click()
        row = page.locator(f"tr[data-app='{app_id}']")
        await expect(row.locator("td").nth(2)).to_have_text("1.0.0")
        # Scans at a clinic scene reach the app.
        await page.get_by_label("类型").select_option("clinic")
        await page.get_by_label("场景").fill(scene)
        await page.get_by_role("button", name="绑定到扫码场景").click()
        await expect(page.get_by_text(f"已绑定：医院诊所 · {scene}")).to_be_visible()

        # Staff: the app declares doctors at clinics; a grant shows, a role it does not declare is refused.
        await nav.get_by_role("link", name="员工授权").click()
        await page.get_by_label("小程序").select_option(app_id)
        grant = page.get_by_role("region", name="授予角色")
        await grant.get_by_label("账号").fill(str(developer_id))
        await grant.get_by_label("角色").fill("surgeon")
        await grant.get_by_role("button", name="授予角色").click()
        await expect(page.get_by_role("alert")).to_contain_text("staff.unknown_role")
        await grant.get_by_label("角色").fill("doctor")
        await grant.get_by_label("单位").fill("clinic:console-1")
        await grant.get_by_role("button", name="授予角色").click()
        held = page.locator(f"tr[data-account='{developer_id}'][data-role='doctor']")
        await expect(held).to_contain_text("clinic:console-1")
        await held.get_by_role("button", name="收回").click()
        await expect(held).to_have_count(0)

        await nav.get_by_role("link", name="终端").click()
        enrol = page.get_by_role("region", name="生成一次性登记码")
        await enrol.get_by_label("名称").fill("门诊二楼")
        await enrol.get_by_label("类型").select_option("clinic")
        await enrol.get_by_label("场景").fill(scene)
        await enrol.get_by_role("button", name="生成一次性登记码").click()
        await expect(page.locator("#enrolment-code")).to_have_text(
            re.compile(r"^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}$")
        )
        code = await page.locator("#enrolment-code").text_content() or ""

        # A key pair made in the page: the private key, shown once, signs the terminal in.
        register = page.get_by_role("region", name="以新密钥对登记终端")
        await register.get_by_label("名称").fill("3 路公交")
        await register.get_by_label("类型").select_option("bus")
        await register.get_by_label("场景").fill("console-line-3")
        await register.get_by_role("button", name="以新密钥对登记终端").click()
        key_file = json.loads(await register.locator("pre").text_content() or "")
        row = page.locator(f"tr[data-terminal='{key_file['terminal_id']}']")
        await expect(row).to_contain_text("3 路公交")
        key = Ed25519PrivateKey.from_private_bytes(b64decode(key_file["private_key"]))

        async def sign_in_as_terminal() -> httpx.Response:
            assertion = client_assertion(key_file["terminal_id"], key, aud=key_file["token_endpoint"])
            async with httpx.AsyncClient(base_url=web.url) as http:
                return await http.post("/v1/terminal/token", data=token_form(assertion))

        assert (await sign_in_as_terminal()).status_code == 200
        await row.get_by_role("button", name="停用").click()  # disabled: it may not sign in any more
        await expect(row.get_by_role("button", name="启用")).to_be_visible()
        refused = await sign_in_as_terminal()
        assert (refused.status_code, refused.json()["code"]) == (401, "terminal.disabled")

        # A partner county's issuer key joins the trust list (a new signed version) and leaves it again.
        await nav.get_by_role("link", name="信任列表").click()
        version = await page.locator(".notice").first.text_content() or ""
        await page.get_by_label("签发方").select_option("330523")
        await page.get_by_label("密钥编号").fill("0a0b0c0d")
        await page.get_by_label("公钥（base64url）").fill(b64(Ed25519PrivateKey.generate()))
        await page.get_by_label("生效时间").fill("2026-01-01")
        await page.get_by_label("失效时间").fill("2030-01-01")
        await page.get_by_role("button", name="添加").click()
        partner = page.locator("tr[data-issuer='330523'][data-key='0a0b0c0d']")
        await expect(partner).to_contain_text("安吉 Anji")
        await expect(page.locator(".notice").first).not_to_have_text(version)
        await partner.get_by_role("button", name="移除").click()
        await expect(partner).to_have_count(0)

        await nav.get_by_role("link", name="一卡通对账").click()
        await expect(page.locator("#main .notice")).to_contain_text("一致")
        await nav.get_by_role("link", name="审计日志").click()
        await expect(page.get_by_role("cell", name="terminal.enrolment_created").first).to_be_visible()
        await page.get_by_role("button", name="校验哈希链").click()
        await expect(page.get_by_text("审计日志完整")).to_be_visible()
    assert tab.outside == []
    assert [e for e in tab.errors if "status of 422" not in e] == []  # only the refused role was an error

    # A terminal page enrolled with that code scans a resident who uses the app: the app's lines show.
    resident = verified_resident(web)
    eventually(lambda: resident.get(f"/v1/miniapps/{app_id}/api/whoami").status_code == 200)
    payload = resident.get("/v1/me/codes/ankang").json()["payload"]
    async with opened(browser, web, "/terminal/") as terminal:
        await terminal.page.get_by_label("登记码").fill(code)
        await terminal.page.get_by_role("button", name="登记").click()
        await expect(terminal.page.locator("#identity")).to_contain_text(f"门诊二楼 · 医院诊所 · {scene}")
        await terminal.page.get_by_label("扫码内容").fill(payload)
        await terminal.page.get_by_role("button", name="核验").click()
        await expect(terminal.page.locator("#decision-lines li")).to_have_text(["Queue number 7", "Room 203"])
        await expect(terminal.page.locator("#decision")).to_contain_text("李**")
    assert terminal.errors == []

    async with httpx.AsyncClient(base_url=web.url) as http:
        r = await http.get(f"/v1/developer/apps/{app_id}", headers={"authorization": f"Bearer {token}"})
        state = r.json()
        assert state["stable_version"] == "1.0.0" and state["versions"][0]["review_reason"] == "符合要求"


async def test_an_apps_own_admin_manages_its_staff_at_its_unit_and_nothing_else(
    web: RealServer, browser: Browser, tmp_path: Path
) -> None:
    developer, operator = sign_in(web, role="developer"), sign_in(web, phone=DEMO_OPERATOR_PHONE)
    app_id, _ = release_app(web, write_probe(tmp_path, new_app_id("staffadmin")), developer, operator)
    head_phone = random_phone()
    head = sign_in(web, head_phone)  # the clinic's head: no platform role at all
    doctor = sign_in(web)
    head_id, doctor_id = head.get("/v1/me").json()["id"], doctor.get("/v1/me").json()["id"]
    r = operator.post(
        f"/v1/miniapps/{app_id}/staff",
        json={"account_id": head_id, "role": "admin", "unit": "clinic:staffadmin-a"},
    )
    assert r.status_code == 201, r.text

    async with opened(browser, web, "/console/", size=DESKTOP) as tab:
        page = tab.page
        await console_sign_in(page, head_phone)
        nav = page.get_by_role("navigation", name="功能")
        await expect(nav.get_by_role("link")).to_have_text(["员工授权"])  # no review, release or terminal
        await expect(page.get_by_label("小程序").locator("option")).to_have_count(1)
        grant = page.get_by_role("region", name="授予角色")
        await grant.get_by_label("账号").fill(str(doctor_id))
        await grant.get_by_label("角色").fill("doctor")
        await grant.get_by_label("单位").fill("clinic:staffadmin-a")
        await grant.get_by_role("button", name="授予角色").click()
        await expect(page.locator(f"tr[data-account='{doctor_id}'][data-role='doctor']")).to_be_visible()
        await grant.get_by_label("单位").fill("clinic:staffadmin-b")  # another clinic's staff is not theirs
        await grant.get_by_role("button", name="授予角色").click()
        await expect(page.get_by_role("alert")).to_contain_text("staff.not_allowed")
        assert await serious_violations(page) == []
    assert tab.outside == []
    assert [e for e in tab.errors if "403" not in e] == []  # the refused grant, and nothing else, failed
    held = operator.get(f"/v1/miniapps/{app_id}/staff").json()
    assert {(g["account_id"], g["role"], g["unit"]) for g in held} == {
        (head_id, "admin", "clinic:staffadmin-a"),
        (doctor_id, "doctor", "clinic:staffadmin-a"),
    }
