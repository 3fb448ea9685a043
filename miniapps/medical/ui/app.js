// 一码就医: the resident's bookings with their live queue position, and booking a session.
const $ = (id) => document.getElementById(id);
const say = (text) => { $("status").textContent = text; };
const county = () => new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);

function item(text, label, action) {
  const li = document.createElement("li");
  li.textContent = text;
  if (label) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", action);
    li.append(button);
  }
  return li;
}

async function bookings() {
  // one call: the open bookings, each waiting one with how many are ahead
  const { bookings } = await yima.call("/bookings", { query: { open: "1" } });
  $("bookings").replaceChildren(...bookings.map((b) => {
    const where = b.status === "waiting" ? " · 前面 " + b.ahead + " 人 ahead"
      : b.status === "called" ? " · 请就诊 your turn" : "";
    const text = b.day + " " + b.half + " " + b.doctor + " No. " + b.number + where;
    return b.status === "booked" ? item(text, "取消 Cancel", () => cancel(b.id)) : item(text);
  }));
}

// The prescriptions a pharmacy can still fill: what was prescribed, until when, and the pass to show there.
async function prescriptions() {
  const { prescriptions } = await yima.call("/prescriptions");
  $("prescriptions").replaceChildren(...prescriptions.map((p) => {
    const items = p.items.map(([drug, boxes]) => drug + " x" + boxes).join(", ");
    const until = new Date(p.valid_until * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 16).replace("T", " ");
    return item(p.day + " " + items + " · 有效至 valid until " + until, "出示 Show", () => showPass(p.payload));
  }));
}

const REFUSED = { "pass.invalid": "已过期或已作废 expired or revoked", "pass.not_found": "不是您的处方 not yours" };

// The shell checks the pass is this app's, this resident's, unexpired and not revoked, and shows it full-screen
// as a QR code for the pharmacy to scan; the page never draws it. A refusal (pass.not_found, pass.invalid) is said.
async function showPass(payload) {
  try {
    await yima.showPass(payload);
  } catch (error) {
    const why = REFUSED[error.code] || (error.problem && error.problem.error ? error.problem.error : error.code);
    say("无法出示 cannot show the prescription: " + why);
    prescriptions(); // an expired or revoked one drops out of the list
  }
}

async function cancel(id) {
  try {
    const done = await yima.call("/bookings/" + encodeURIComponent(id), { method: "DELETE" });
    say("已取消 cancelled, refunded " + done.refunded_fen / 100 + " 元");
  } catch (error) {
    say(error.problem && error.problem.error ? error.problem.error : error.code);
  }
  bookings();
}

let sessionsAsked = 0;
async function sessions() {
  const asked = ++sessionsAsked;
  const query = { department: $("department").value, day: $("day").value };
  const { sessions } = await yima.call("/sessions", { query });
  if (asked !== sessionsAsked) return; // a later choice's list is on its way: never show an older one over it
  $("sessions").dataset.for = query.department + " " + query.day;
  $("sessions").replaceChildren(...sessions.map((s) => item(
    s.half + " " + s.doctor_name + " · " + s.fee_fen / 100 + " 元 · " + s.left + " left",
    "预约 Book", () => book(s.id))));
}

async function book(id) {
  try {
    await yima.requestConsent("birth_date"); // 65 or more: no fee
    const booked = await yima.call("/sessions/" + encodeURIComponent(id) + "/book", { method: "POST" });
    let paid = booked.waived ? "免挂号费 no fee" : "";
    if (booked.payment_id) paid = (await yima.confirmPayment(booked.payment_id)).status;
    say("No. " + booked.number + " · " + paid);
  } catch (error) {
    say(error.problem && error.problem.error ? error.problem.error : error.code);
  }
  bookings();
  sessions();
}

// A doctor sees today's sessions of their institution: the clinic screen (numbers called, how many wait) and
// the button that calls the next patient.
async function clinic(institutions) {
  const { staff } = await yima.call("/me");
  const units = staff.filter((s) => s.role === "doctor" && s.unit).map((s) => s.unit.split(":")[1]);
  if (!units.length) return;
  $("clinic").hidden = false;
  // the waiting room's display: this page's bundle, numbers only (screen.html)
  $("screen-links").replaceChildren(...units.map((institution) => {
    const link = document.createElement("a");
    link.href = "screen.html?institution=" + encodeURIComponent(institution);
    const name = (institutions.find((i) => i.id === institution) || { name: institution }).name;
    link.textContent = "候诊大屏 Waiting-room screen · " + name;
    return link;
  }));
  const draw = async () => {
    const rows = [];
    for (const institution of units) { // one call per institution: every session's screen of the day
      const { screens } = await yima.call("/screens", { query: { institution, day: county() } });
      for (const s of screens) {
        const text = s.half + " " + s.doctor_name + " · 正在叫号 calling " + (s.calling.join(", ") || "-")
          + " · 等候 waiting " + s.waiting;
        rows.push(item(text, "叫号 Call next", async () => {
          const called = await yima.call("/doctor/sessions/" + encodeURIComponent(s.session) + "/next", { method: "POST" });
          say(called.number === null ? "无人等候 nobody waiting" : "请 No. " + called.number + " 就诊");
          draw();
        }));
      }
    }
    $("clinic-sessions").replaceChildren(...rows);
  };
  await draw();
  setInterval(draw, 5000);
}

async function start() {
  const { institutions } = await yima.call("/institutions");
  for (const institution of institutions) {
    for (const d of institution.departments) {
      $("department").append(new Option(institution.name + " · " + d.name, d.id));
    }
  }
  $("day").value = county();
  $("department").addEventListener("change", sessions);
  $("day").addEventListener("change", sessions);
  await Promise.all([bookings(), prescriptions(), sessions(), clinic(institutions)]);
  setInterval(bookings, 15000); // the queue moves: the position stays live
}

$("code").addEventListener("click", () => yima.showCode());
start().catch((error) => say(error.code));
