/** One finished message. Memoised: streaming elsewhere never re-renders it. */

import { memo, useLayoutEffect, useState, useSyncExternalStore } from "react";
import type { Message } from "../api/types";
import { useT, type T } from "../i18n";
import { copyText } from "../lib/clipboard";
import type { StreamBuffer, StreamSnapshot } from "../lib/streamBuffer";
import { store } from "../store/chat";
import { MessageAttachments } from "./Attachments";
import { Citations } from "./Citations";
import { Markdown } from "./Markdown";
import { Icon } from "./Icon";
import { Reasoning } from "./Reasoning";
import { SummaryItem } from "./Summary";

export interface BranchInfo {
  index: number;
  total: number;
  prevId: string | null;
  nextId: string | null;
}

interface Props {
  message: Message;
  busy: boolean;
  branchIndex: number;
  branchTotal: number;
  prevId: string | null;
  nextId: string | null;
  /** Set while this answer streams: the body follows the buffer, once per frame. */
  buffer?: StreamBuffer | null;
}

export function UsageLine({ message, t }: { message: Pick<Message, "usage">; t: T }) {
  const u = message.usage;
  if (!u) return null;
  let text = t("usage", { prompt: u.promptTokens, completion: u.completionTokens });
  if (u.reasoningTokens) text += ` (${t("reasoningTokens", { n: u.reasoningTokens })})`;
  return <span className="usage" data-testid="usage">{text}</span>;
}

function BranchSwitcher({ conversationId, index, total, prevId, nextId }: { conversationId: string } & BranchInfo) {
  const t = useT();
  if (total < 2) return null;
  return (
    <span className="branches" role="group" aria-label={t("branch", { n: index + 1, total })}>
      <button
        type="button"
        className="icon-btn"
        disabled={prevId === null}
        aria-label={t("previousVersion")}
        onClick={() => {
          if (prevId) store.switchBranch(conversationId, prevId);
        }}
      >
        <Icon name="left" />
      </button>
      <span className="branch-count">{t("branch", { n: index + 1, total })}</span>
      <button
        type="button"
        className="icon-btn"
        disabled={nextId === null}
        aria-label={t("nextVersion")}
        onClick={() => {
          if (nextId) store.switchBranch(conversationId, nextId);
        }}
      >
        <Icon name="right" />
      </button>
    </span>
  );
}

function Editor({ message, onDone }: { message: Message; onDone: () => void }) {
  const t = useT();
  const [text, setText] = useState(message.content);
  const submit = () => {
    onDone();
    void store.editAndResend(message.id, text);
  };
  return (
    <form
      className="editor"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <textarea
        aria-label={t("edit")}
        value={text}
        // Focus moves into the editor the user just opened.
        autoFocus
        onChange={(e) => {
          setText(e.target.value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.stopPropagation();
            onDone();
          } else if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <div className="editor-actions">
        <button type="button" className="btn" onClick={onDone}>
          {t("cancel")}
        </button>
        <button type="submit" className="btn primary" disabled={!text.trim()}>
          {t("saveAndSend")}
        </button>
      </div>
    </form>
  );
}

const noSubscribe = (): (() => void) => () => undefined;
const noSnapshot = (): StreamSnapshot | null => null;

/**
 * An answer's text, reasoning and streaming marks. The same elements serve the streaming and
 * the finished answer, so when the stream ends nothing is re-created: the Markdown blocks stay.
 */
function AnswerBody({ message, buffer }: { message: Message; buffer: StreamBuffer | null }) {
  const t = useT();
  const snap = useSyncExternalStore(buffer ? buffer.subscribe : noSubscribe, buffer ? buffer.getSnapshot : noSnapshot);
  // Flush-to-commit time goes back to the buffer, so long answers flush less often.
  useLayoutEffect(() => {
    buffer?.rendered();
  }, [buffer, snap]);
  const content = snap ? snap.content : message.content;
  const reasoning = snap ? snap.reasoning : (message.reasoning ?? "");
  const phase = snap?.phase ?? null;
  return (
    <>
      {reasoning ? <Reasoning text={reasoning} live={phase === "reasoning"} /> : null}
      {phase === "waiting" ? (
        <div className="typing" aria-label={t("thinking")}>
          <span />
          <span />
          <span />
        </div>
      ) : null}
      <Markdown text={content} />
      {phase === "answer" ? <span className="caret" aria-hidden="true" /> : null}
    </>
  );
}

export const MessageItem = memo(function MessageItem({
  message,
  busy,
  branchIndex,
  branchTotal,
  prevId,
  nextId,
  buffer = null,
}: Props) {
  const t = useT();
  const [editing, setEditing] = useState(false);
  const [copied, setCopied] = useState(false);
  const user = message.role === "user";
  const streaming = buffer !== null;
  if (message.role === "summary") return <SummaryItem message={message} />;
  const ctx = message.context;
  return (
    <article
      className={`msg ${user ? "msg-user" : "msg-assistant"}`}
      data-role={message.role}
      data-id={message.id}
      data-status={streaming ? "streaming" : (message.status ?? "done")}
      aria-label={user ? t("userMessage") : t("assistantMessage")}
      aria-busy={streaming}
    >
      <div className="msg-author">{user ? t("you") : (message.model ?? t("assistant"))}</div>
      {editing ? (
        <Editor
          message={message}
          onDone={() => {
            setEditing(false);
          }}
        />
      ) : (
        <div className="msg-body">
          {ctx && (ctx.dropped > 0 || ctx.summarised > 0) ? (
            <div className="msg-flag context-note">
              {t("contextTrimmed", { dropped: ctx.dropped, summarised: ctx.summarised })}
            </div>
          ) : null}
          {message.attachments?.length ? <MessageAttachments attachments={message.attachments} /> : null}
          {user ? <div className="user-text">{message.content}</div> : <AnswerBody message={message} buffer={buffer} />}
          {!user && !streaming && message.citations?.length ? <Citations citations={message.citations} /> : null}
          {message.status === "stopped" && !streaming ? <div className="msg-flag">{t("stopped")}</div> : null}
          {message.status === "error" && !streaming ? (
            <div className="msg-error" role="alert">
              {t("error")}: {message.error ?? ""}
            </div>
          ) : null}
        </div>
      )}
      {!editing && !streaming ? (
        <div className="msg-actions">
          <BranchSwitcher
            conversationId={message.conversationId}
            index={branchIndex}
            total={branchTotal}
            prevId={prevId}
            nextId={nextId}
          />
          <button
            type="button"
            className="icon-btn"
            aria-label={copied ? t("copied") : t("copy")}
            title={t("copy")}
            onClick={() => {
              void copyText(message.content).then((ok) => {
                if (!ok) return;
                setCopied(true);
                setTimeout(() => {
                  setCopied(false);
                }, 1500);
              });
            }}
          >
            <Icon name={copied ? "check" : "copy"} />
          </button>
          {user ? (
            <button
              type="button"
              className="icon-btn"
              aria-label={t("edit")}
              title={t("edit")}
              disabled={busy}
              onClick={() => {
                setEditing(true);
              }}
            >
              <Icon name="edit" />
            </button>
          ) : (
            <button
              type="button"
              className="icon-btn"
              aria-label={t("regenerate")}
              title={t("regenerate")}
              disabled={busy}
              onClick={() => {
                void store.regenerate(message.id);
              }}
            >
              <Icon name="refresh" />
            </button>
          )}
          {!user ? <UsageLine message={message} t={t} /> : null}
        </div>
      ) : null}
    </article>
  );
});
