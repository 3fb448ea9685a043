// 一码旅游: reserve a slot of a scenic spot (seniors' prices by the shared birth date), pay, cancel; buy a
// cross-county route; at the gate the Ankang code finds the ticket, or the shell shows the ticket's own pass
// (yima.showPass: the shell checks it is this app's and this resident's, and draws the QR code).
const $ = (id) => document.getElementById(id);
const say = (text) => { $("status").textContent = text; };
const county = () => new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
const yuan = (fen) => fen / 100 + " 元";
const why = (error) => (error.problem && error.problem.error ? error.problem.error : error.code);

function item(text, ...actions) {
  const li = document.createElement("li");
  li.textContent = text;
  for (let i = 0; i + 1 < actions.length; i += 2) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = actions[i];
    button.addEventListener("click", actions[i + 1]);
    li.append(button);
  }
  return li;
}

async function showPass(pass) {
  try {
    await yima.showPass(pass.payload);
  } catch (error) {
    say(why(error));
  }
}

const SHOW = "出示门票 Show ticket";

async function pay(paymentId) {
  return paymentId ? (await yima.confirmPayment(paymentId)).status : "免票 free";
}

async function tickets() {
  const { tickets, orders } = await yima.call("/tickets");
  const open = tickets.filter((t) => t.status === "booked");
  $("tickets").replaceChildren(
    ...open.map((t) => {
      const text = t.day + " " + t.start + " " + t.spot_name + " · " + t.people + " 人"
        + (t.entered ? " · 已入园 entered" : "");
      const show = t.pass ? [SHOW, () => showPass(t.pass)] : [];
      return t.entered ? item(text, ...show) : item(text, ...show, "退票 Cancel", () => cancel(t.id));
    }),
    ...orders.map((o) => item(o.name + " · " + o.from + " – " + o.until, ...(o.pass ? [SHOW, () => showPass(o.pass)] : []))),
  );
}

async function cancel(id) {
  try {
    const done = await yima.call("/tickets/" + encodeURIComponent(id), { method: "DELETE" });
    say("已退票 cancelled, refunded " + yuan(done.refunded_fen));
  } catch (error) {
    say(why(error));
  }
  await tickets();
  await slots();
}

let slotsAsked = 0;
async function slots() {
  const asked = ++slotsAsked;
  const spot = $("spot").value, day = $("day").value;
  const { slots } = await yima.call("/spots/" + encodeURIComponent(spot) + "/slots", { query: { day } });
  if (asked !== slotsAsked) return; // a later choice's list is on its way: never show an older one over it
  $("slots").dataset.for = spot + " " + day;
  $("slots").replaceChildren(...slots.map((s) => item(
    s.start + "–" + s.end + " · " + s.left + " left", "预约 Reserve", () => reserve(s.id))));
}

async function reserve(id) {
  try {
    const people = Number($("people").value) || 1;
    if (people === 1) await yima.requestConsent("birth_date"); // 60 or more: half price, 70 or more: free
    const ticket = await yima.call("/slots/" + encodeURIComponent(id) + "/reserve",
      { method: "POST", body: { people } });
    say(ticket.spot_name + " " + ticket.start + " · " + yuan(ticket.price_fen) + " · " + await pay(ticket.payment_id));
  } catch (error) {
    say(why(error));
  }
  await tickets();
  await slots();
}

async function buy(id) {
  try {
    const order = await yima.call("/packages/" + encodeURIComponent(id) + "/buy",
      { method: "POST", body: { day: $("day").value } });
    say(order.name + " · " + yuan(order.price_fen) + " · " + await pay(order.payment_id));
  } catch (error) {
    say(why(error));
  }
  await tickets();
}

async function start() {
  const [{ spots }, { packages }] = await Promise.all([yima.call("/spots"), yima.call("/packages")]);
  for (const s of spots) {
    const rating = s.rating === null ? "" : " ★" + s.rating;
    $("spot").append(new Option(s.name + " · " + yuan(s.price_fen) + rating, s.id));
  }
  $("packages").replaceChildren(...packages.map((p) => item(
    p.name + " · " + p.spots.length + " spots · " + yuan(p.price_fen), "购买 Buy", () => buy(p.id))));
  $("day").value = county();
  $("spot").addEventListener("change", slots);
  $("day").addEventListener("change", slots);
  await Promise.all([tickets(), slots()]);
}

$("code").addEventListener("click", () => yima.showCode());
start().catch((error) => say(error.code));
