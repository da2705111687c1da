/** A small promise wrapper over IndexedDB: the local mode's storage (database "chatgate"). */

import type { Conversation, Message } from "./types";

export const DB_NAME = "chatgate";
export const DB_VERSION = 1;
export const CONVERSATIONS = "conversations";
export const MESSAGES = "messages";

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => {
      resolve(r.result);
    };
    r.onerror = () => {
      reject(r.error ?? new Error("IndexedDB request failed"));
    };
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => {
      resolve();
    };
    tx.onerror = () => {
      reject(tx.error ?? new Error("IndexedDB transaction failed"));
    };
    tx.onabort = () => {
      reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    };
  });
}

export function openDb(factory: IDBFactory = indexedDB): Promise<IDBDatabase> {
  const open = factory.open(DB_NAME, DB_VERSION);
  open.onupgradeneeded = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains(CONVERSATIONS)) {
      db.createObjectStore(CONVERSATIONS, { keyPath: "id" });
    }
    if (!db.objectStoreNames.contains(MESSAGES)) {
      const store = db.createObjectStore(MESSAGES, { keyPath: "id" });
      store.createIndex("conversationId", "conversationId", { unique: false });
    }
  };
  return req(open);
}

export class Idb {
  constructor(private readonly db: IDBDatabase) {}

  async allConversations(): Promise<Conversation[]> {
    const tx = this.db.transaction(CONVERSATIONS, "readonly");
    return (await req(tx.objectStore(CONVERSATIONS).getAll())) as Conversation[];
  }

  async conversation(id: string): Promise<Conversation | undefined> {
    const tx = this.db.transaction(CONVERSATIONS, "readonly");
    return (await req(tx.objectStore(CONVERSATIONS).get(id))) as Conversation | undefined;
  }

  /** Read, change and write one conversation in a single transaction (a deleted one stays deleted). */
  async updateConversation(
    id: string,
    change: (old: Conversation) => Conversation,
  ): Promise<Conversation | undefined> {
    const tx = this.db.transaction(CONVERSATIONS, "readwrite");
    const store = tx.objectStore(CONVERSATIONS);
    const old = (await req(store.get(id))) as Conversation | undefined;
    const next = old && change(old);
    if (next) store.put(next);
    await done(tx);
    return next;
  }

  async putConversation(c: Conversation): Promise<void> {
    const tx = this.db.transaction(CONVERSATIONS, "readwrite");
    tx.objectStore(CONVERSATIONS).put(c);
    await done(tx);
  }

  async putMessages(messages: Message[], conversation?: Conversation): Promise<void> {
    const stores = conversation ? [MESSAGES, CONVERSATIONS] : [MESSAGES];
    const tx = this.db.transaction(stores, "readwrite");
    const ms = tx.objectStore(MESSAGES);
    for (const m of messages) ms.put(m);
    if (conversation) tx.objectStore(CONVERSATIONS).put(conversation);
    await done(tx);
  }

  async messagesOf(conversationId: string): Promise<Message[]> {
    const tx = this.db.transaction(MESSAGES, "readonly");
    const index = tx.objectStore(MESSAGES).index("conversationId");
    return (await req(index.getAll(IDBKeyRange.only(conversationId)))) as Message[];
  }

  async allMessages(): Promise<Message[]> {
    const tx = this.db.transaction(MESSAGES, "readonly");
    return (await req(tx.objectStore(MESSAGES).getAll())) as Message[];
  }

  async deleteConversation(id: string): Promise<void> {
    const tx = this.db.transaction([MESSAGES, CONVERSATIONS], "readwrite");
    tx.objectStore(CONVERSATIONS).delete(id);
    const index = tx.objectStore(MESSAGES).index("conversationId");
    const keys = await req(index.getAllKeys(IDBKeyRange.only(id)));
    const ms = tx.objectStore(MESSAGES);
    for (const k of keys) ms.delete(k);
    await done(tx);
  }
}
