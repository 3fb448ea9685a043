// 一码旅游: reserve a slot of a scenic spot (seniors' prices by the shared birth date), pay within the payment
// window, cancel; buy a cross-county route and cancel it while no gate admitted it; at the gate the Ankang code
// finds the ticket, or the shell shows the ticket's own pass (yima.showPass: the shell checks it is this app's
// and this resident's, and draws the QR code); a visitor who entered (by a ticket or a route) rates and reviews
// the spot; everyone reads the chosen spot's reviews and average. Every answer is told in words, never a code.
const $ = (id) => document.getElementById(id);
const say = (text) => { $("status").textContent = text; };
const COUNTY_MS = 8 * 3600 * 1000; // county time is UTC+8, whatever the phone's zone
const county = () => new Date(Date.now() + COUNTY_MS).toISOString().slice(0, 10);
const clock = (epoch) => new Date(epoch * 1000 + COUNTY_MS).toISOString().slice(11, 16);
const yuan = (fen) => fen / 100 + " 元";
const spotLabel = (s) => s.name + " · " + yuan(s.price_fen) + (s.rating === null ? "" : " ★" + s.rating);
const GRACE_MIN = 30; // a ticket's gate opens 30 minutes before its slot (GRACE in gates.py)
const names = new Map(); // spot id -> name

function earlier(hhmm, minutes) {
  const [h, m] = hhmm.split(":").map(Number);
  const at = Math.max(0, h * 60 + m - minutes);
  return String(Math.floor(at / 60)).padStart(2, "0") + ":" + String(at % 60).padStart(2, "0");
}

// What each refusal means to the visitor, in Chinese and English (the API's own words are for developers).
const WORDS = {
  "tourism.full": "名额已满，请选其他时段 Not enough places left: choose another slot",
  "tourism.slot_over": "该时段已结束 This slot is over",
  "tourism.no_such_slot": "该时段已关闭 This slot is closed",
  "tourism.no_such_spot": "该景区已下架 This spot is no longer offered",
  "tourism.no_such_package": "该线路已下架 This route is no longer offered",
  "tourism.bad_group": "每张票 1 至 30 人 A ticket is for 1 to 30 people",
  "tourism.bad_day": "请选择今天起 90 天内的日期 Choose a day from today to 90 days ahead",
  "tourism.sign_in": "请先登录 Please sign in first",
  "tourism.cancelling": "上一次的退款还在处理中，请稍后再试 Your earlier refund is still in progress: try again shortly",
  "tourism.changed": "刚刚有变化，请再试一次 Something changed just now: please try again",
  "tourism.no_such_ticket": "这张票已不能操作 This ticket is no longer open",
  "tourism.no_such_order": "这个线路订单已不能操作 This route order is no longer open",
  "tourism.route_entered": "该线路已在景区入园使用，不能退订 This route was used at a gate: it cannot be cancelled",
  "tourism.not_a_visitor": "入园后才能评价 You can review a spot after entering it",
  "tourism.bad_review": "请选 1 至 5 星，评价不超过 500 字 Choose 1 to 5 stars and write at most 500 characters",
  "payment.already_decided": "这笔付款已结束 This payment is already settled",
  "payment.not_found": "找不到这笔付款 This payment was not found",
  "pass.not_found": "无法出示这张票 This ticket cannot be shown",
  "pass.invalid": "无法出示这张票 This ticket cannot be shown",
};
const TICKET_CUTOFF = "时段已开始，不能退票 The slot has started: the ticket can no longer be cancelled";
const ROUTE_STARTED = "线路已开始，不能再付款，请退订后重新购买 The route has started: cancel it and buy it for a new day";
const ROUTE_CUTOFF = "线路日期已过，不能退订 The route's days are over: it can no longer be cancelled";

function why(error, words = {}) {
  const known = words[error.code] || WORDS[error.code];
  if (known) return known;
  const detail = error.problem && error.problem.error;
  return "出错了，请稍后再试 Something went wrong: please try again" + (detail ? " (" + detail + ")" : "");
}

const PAID = {
  succeeded: "已付款 paid",
  pending_confirmation: "待付款 not paid yet",
  declined: "未付款 not paid",
  failed: "付款失败 payment failed",
  cancelled: "付款已取消 payment cancelled",
};

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

// A line under an item's first one: its state, in words
function note(li, text, kind) {
  const line = document.createElement("span");
  line.className = "note" + (kind ? " " + kind : "");
  line.textContent = text;
  li.firstChild.after(line);
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
  return paymentId ? PAID[(await yima.confirmPayment(paymentId)).status] || "" : "免票 free";
}

// A confirmation in the page (the sandbox allows no confirm()): true when the visitor says yes. The focus
// starts on "keep it" and goes back to the button that asked.
function confirmed(title, text, yes) {
  const dialog = $("confirm"), opener = document.activeElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yes;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-yes").onclick = $("confirm-no").onclick = dialog.onclose = null;
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    dialog.onclose = () => done(false); // Escape
    dialog.showModal();
    $("confirm-no").focus(); // the safe answer first (autofocus is not honoured in the shell's frame)
  });
}

function refundWords(t) {
  if (t.refunded_fen) return "已退款 " + yuan(t.refunded_fen) + " refunded";
  return t.price_fen ? "未扣款 nothing was charged" : "";
}

function ticketItem(t) {
  const hours = "入园时间 Entry " + earlier(t.start, GRACE_MIN) + "–" + t.end;
  const show = t.pass ? [SHOW, () => showPass(t.pass)] : [];
  let actions = [], state;
  if (t.status === "cancelling") {
    state = ["退款处理中 Refund in progress", "wait"];
  } else if (t.status === "released") {
    state = ["已释放 Released: not paid in time", "gone"];
  } else if (t.status === "cancelled") {
    const closed = t.cancel_reason === "slot_closed" ? "时段已关闭 The slot was closed · " : "";
    state = [[closed + "已退票 Cancelled", refundWords(t)].filter(Boolean).join(" · "), "gone"];
  } else if (t.entered) {
    state = [hours + " · 已入园 entered"];
    actions = [...show, "评价 Review", (event) => openReview(t.spot, t.spot_name, event.currentTarget)];
  } else if (t.hold_until && !t.paid) {
    state = [hours + " · " + yuan(t.price_fen) + " · 请在 " + clock(t.hold_until) + " 前付款 Pay by "
      + clock(t.hold_until), "due"];
    actions = ["付款 Pay " + yuan(t.price_fen), () => payTicket(t), "退票 Cancel", () => cancel(t)];
  } else {
    state = [hours + (t.price_fen ? " · 已付款 paid" : "")];
    actions = [...show, "退票 Cancel", () => cancel(t)];
  }
  return note(item(t.day + " " + t.start + " " + t.spot_name + " · " + t.people + " 人", ...actions), ...state);
}

function orderItem(o) {
  const entered = Object.keys(o.entered || {}).filter((spot) => o.entered[spot]);
  let actions = [], state;
  if (o.status === "cancelling") {
    state = ["退款处理中 Refund in progress", "wait"];
  } else if (o.status === "cancelled") {
    state = [["已退订 Cancelled", refundWords(o)].filter(Boolean).join(" · "), "gone"];
  } else {
    const paid = o.paid ? "已付款 paid" : "待付款 not paid yet";
    const visited = entered.map((spot) => names.get(spot) || spot);
    state = [yuan(o.price_fen) + " · " + paid + (visited.length ? " · 已入园 entered: " + visited.join("、") : ""),
      o.paid ? "" : "due"];
    if (!o.paid) actions.push("付款 Pay " + yuan(o.price_fen), () => payOrder(o));
    if (o.pass) actions.push(SHOW, () => showPass(o.pass));
    if (!entered.length) actions.push("退订 Cancel route", () => cancelOrder(o));
    for (const spot of entered) {
      const name = names.get(spot) || spot;
      actions.push("评价 Review " + name, (event) => openReview(spot, name, event.currentTarget));
    }
  }
  return note(item(o.name + " · " + o.from + " – " + o.until, ...actions), ...state);
}

async function tickets() {
  const { tickets, orders } = await yima.call("/tickets");
  const today = county();
  // booked and refunds under way always; a released or cancelled ticket until its day is over
  const shown = tickets.filter((t) => t.status === "booked" || t.status === "cancelling" || t.day >= today);
  $("tickets").replaceChildren(...shown.map(ticketItem));
  $("orders").replaceChildren(
    ...orders.filter((o) => o.status !== "cancelled" || o.until >= today).map(orderItem));
}

async function payTicket(t) {
  try { // asked again, the same ticket: its charge, or a new one if the last was declined
    const again = await yima.call("/slots/" + encodeURIComponent(t.slot) + "/reserve",
      { method: "POST", body: { people: t.people } });
    say(again.spot_name + " " + again.start + " · " + yuan(again.price_fen) + " · " + await pay(again.payment_id));
  } catch (error) {
    say(why(error));
  }
  await tickets();
}

async function payOrder(o) {
  try { // bought again for the same day: the same order
    const again = await yima.call("/packages/" + encodeURIComponent(o.package) + "/buy",
      { method: "POST", body: { day: o.from } });
    say(again.name + " · " + yuan(again.price_fen) + " · " + await pay(again.payment_id));
  } catch (error) { // its first day is past: that order can only be cancelled now
    say(why(error, { "tourism.bad_day": ROUTE_STARTED }));
  }
  await tickets();
}

function moneyBack(t) {
  if (t.paid && t.price_fen) return "将退还 " + yuan(t.price_fen) + " 到一卡通 The " + t.price_fen / 100
    + " yuan paid go back to your one-card.";
  return t.price_fen ? "尚未付款，不会扣款 Not paid yet: nothing will be charged." : "免票 Free ticket.";
}

function cancelledWords(done, what) {
  if (done.status === "cancelling") return "退款处理中 Refund in progress: " + what + " is cancelled, the money follows";
  return (what === "the ticket" ? "已退票 Cancelled" : "已退订 Cancelled")
    + (done.refunded_fen ? " · 已退款 " + yuan(done.refunded_fen) + " refunded" : "");
}

async function cancel(t) {
  const sure = await confirmed("退票 Cancel this ticket?", t.spot_name + " " + t.day + " " + t.start + " · "
    + moneyBack(t), "确认退票 Yes, cancel it");
  if (!sure) return;
  try {
    const done = await yima.call("/tickets/" + encodeURIComponent(t.id), { method: "DELETE" });
    say(cancelledWords(done, "the ticket"));
  } catch (error) {
    say(why(error, { "tourism.past_cutoff": TICKET_CUTOFF }));
  }
  await tickets();
  await slots();
}

async function cancelOrder(o) {
  const sure = await confirmed("退订线路 Cancel this route?", o.name + " · " + o.from + " – " + o.until + " · "
    + moneyBack(o), "确认退订 Yes, cancel it");
  if (!sure) return;
  try {
    const done = await yima.call("/orders/" + encodeURIComponent(o.id), { method: "DELETE" });
    say(cancelledWords(done, "the route"));
  } catch (error) {
    say(why(error, { "tourism.past_cutoff": ROUTE_CUTOFF }));
  }
  await tickets();
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
    const paid = await pay(ticket.payment_id);
    const due = ticket.hold_until && paid !== PAID.succeeded
      ? " · 请在 " + clock(ticket.hold_until) + " 前付款 Pay by " + clock(ticket.hold_until) : "";
    say(ticket.spot_name + " " + ticket.start + " · " + yuan(ticket.price_fen) + " · " + paid + due);
  } catch (error) {
    say(why(error));
  }
  await tickets();
  await slots();
}

let reviewsAsked = 0;
async function reviews() {
  const asked = ++reviewsAsked;
  const spot = $("spot").value;
  const [{ spots }, { reviews }] = await Promise.all([
    yima.call("/spots"), yima.call("/spots/" + encodeURIComponent(spot) + "/reviews")]);
  if (asked !== reviewsAsked) return; // a later choice's reviews are on their way
  for (const s of spots) {
    const option = [...$("spot").options].find((o) => o.value === s.id);
    if (option) option.textContent = spotLabel(s);
  }
  const rated = spots.find((s) => s.id === spot);
  $("rating").textContent = rated.name + ": " + (rated.reviews
    ? "平均 average ★" + rated.rating + " · " + rated.reviews + " 条评价 reviews"
    : "暂无评价 no reviews yet");
  $("reviews").dataset.for = spot;
  $("reviews").replaceChildren(...reviews.map((r) => item(
    "★" + r.stars + "/5 · " + new Date(r.at * 1000 + COUNTY_MS).toISOString().slice(0, 10)
      + (r.text ? " · " + r.text : ""))));
}

let reviewing = null, opener = null;
function openReview(spot, name, button) {
  reviewing = spot;
  opener = button;
  for (const radio of document.getElementsByName("stars")) radio.checked = false;
  $("review-text").value = "";
  $("review-title").textContent = "写评价 Review " + name;
  $("review-box").hidden = false;
  $("review-title").focus();
}

function closeReview() {
  reviewing = null;
  $("review-box").hidden = true;
  if (opener && opener.isConnected) opener.focus(); // back where she was
}

// no <form>: the page's sandbox (and its CSP, form-action 'none') submits none; the button sends the review
async function sendReview() {
  const spot = reviewing;
  const chosen = document.querySelector('input[name="stars"]:checked');
  if (!chosen) {
    say("请选择评分 Choose 1 to 5 stars");
    return;
  }
  const stars = Number(chosen.value);
  try {
    const done = await yima.call("/spots/" + encodeURIComponent(spot) + "/reviews",
      { method: "POST", body: { stars, text: $("review-text").value.trim() } });
    closeReview();
    say("已评价 Reviewed · ★" + done.stars);
    $("spot").value = spot; // her review, among the spot's others
    await Promise.all([slots(), reviews()]);
  } catch (error) {
    say(why(error));
  }
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
    names.set(s.id, s.name);
    $("spot").append(new Option(spotLabel(s), s.id));
  }
  $("packages").replaceChildren(...packages.map((p) => item(
    p.name + " · " + p.spots.length + " spots · " + yuan(p.price_fen), "购买 Buy", () => buy(p.id))));
  $("day").value = county();
  $("spot").addEventListener("change", slots);
  $("spot").addEventListener("change", reviews);
  $("day").addEventListener("change", slots);
  await Promise.all([tickets(), slots(), reviews()]);
}

$("code").addEventListener("click", () => yima.showCode().catch((error) => say(why(error))));
$("review-send").addEventListener("click", sendReview);
$("review-close").addEventListener("click", closeReview);
start().catch((error) => say(why(error)));
