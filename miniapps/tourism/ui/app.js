// 一码旅游: reserve a slot of a scenic spot (seniors' prices by the shared birth date), pay, cancel; buy a
// cross-county route; at the gate the Ankang code finds the ticket, or the shell shows the ticket's own pass
// (yima.showPass: the shell checks it is this app's and this resident's, and draws the QR code); a visitor who
// entered rates and reviews the spot from her ticket; everyone reads the chosen spot's reviews and average.
const $ = (id) => document.getElementById(id);
const say = (text) => { $("status").textContent = text; };
const county = () => new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
const yuan = (fen) => fen / 100 + " 元";
const why = (error) => (error.problem && error.problem.error ? error.problem.error : error.code);
const spotLabel = (s) => s.name + " · " + yuan(s.price_fen) + (s.rating === null ? "" : " ★" + s.rating);

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
      return t.entered
        ? item(text, ...show, "评价 Review", (event) => openReview(t.spot, t.spot_name, event.currentTarget))
        : item(text, ...show, "退票 Cancel", () => cancel(t.id));
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
    "★" + r.stars + "/5 · " + new Date(r.at * 1000 + 8 * 3600 * 1000).toISOString().slice(0, 10)
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
  for (const s of spots) $("spot").append(new Option(spotLabel(s), s.id));
  $("packages").replaceChildren(...packages.map((p) => item(
    p.name + " · " + p.spots.length + " spots · " + yuan(p.price_fen), "购买 Buy", () => buy(p.id))));
  $("day").value = county();
  $("spot").addEventListener("change", slots);
  $("spot").addEventListener("change", reviews);
  $("day").addEventListener("change", slots);
  await Promise.all([tickets(), slots(), reviews()]);
}

$("code").addEventListener("click", () => yima.showCode());
$("review-send").addEventListener("click", sendReview);
$("review-close").addEventListener("click", closeReview);
start().catch((error) => say(error.code));
