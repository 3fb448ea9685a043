// The terminal's durable state in IndexedDB: its identity (id, the non-extractable private key as a CryptoKey,
// the pinned roots), what it synced (trust list, revocations, clock offset) and its offline scan records.
// A record is written (the transaction completes) before its decision is shown, as yima_sdk's SQLite file.

const NAME = "yima-terminal";
const VERSION = 1;

function opened() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(NAME, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("state");
      db.createObjectStore("records", { keyPath: "record_id" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

let connection = null;
const db = () => (connection ??= opened());

async function run(store, mode, work) {
  const tx = (await db()).transaction(store, mode, { durability: "strict" });
  const answer = work(tx.objectStore(store));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
  return answer.result;
}

export const getState = (key) => run("state", "readonly", (s) => s.get(key));
export const setState = (key, value) => run("state", "readwrite", (s) => s.put(value, key));

export const addRecord = (record) => run("records", "readwrite", (s) => s.put(record));
export const allRecords = () => run("records", "readonly", (s) => s.getAll());

export async function pendingRecords() {
  return (await allRecords()).filter((r) => r.server_status === null).sort((a, b) => a.scanned_at - b.scanned_at);
}

/** The server's verdicts, by record id; each record keeps its own, once. */
export async function markUploaded(verdicts) {
  const tx = (await db()).transaction("records", "readwrite", { durability: "strict" });
  const store = tx.objectStore("records");
  for (const [id, status, reason] of verdicts) {
    const request = store.get(id);
    request.onsuccess = () => {
      const record = request.result;
      if (record && record.server_status === null) store.put({ ...record, server_status: status, server_reason: reason });
    };
  }
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
}

/** Forget everything: the terminal enrols afresh. */
export async function wipe() {
  const database = await db();
  const tx = database.transaction(["state", "records"], "readwrite");
  tx.objectStore("state").clear();
  tx.objectStore("records").clear();
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
}
