/**
 * The branch on screen. Long conversations render progressively: the newest PAGE messages first,
 * older pages when the reader scrolls up (the scroll position is kept), and off-screen messages
 * skip layout and paint (content-visibility). The view sticks to the bottom while an answer grows,
 * unless the reader scrolled away.
 */

import {
  Component,
  Fragment,
  useCallback,
  useDeferredValue,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
  type RefObject,
} from "react";
import type { Message } from "../api/types";
import { useT } from "../i18n";
import { trimMarker } from "../lib/contextGauge";
import { siblingsOf, threadOf, withSummaries, type MessageMap } from "../lib/tree";
import { useChat } from "../store/chat";
import { Icon } from "./Icon";
import { MessageItem } from "./MessageItem";
import { SideBySide } from "./SideBySide";
import { ContextMarker } from "./Summary";

export const PAGE = 24;
/**
 * Rendered in the same (synchronous) update that opens a chat: none. The first page renders at
 * transition priority right after, in slices React interleaves with input and paint.
 */
const FIRST = 0;
const EMPTY: MessageMap = new Map();
const STICK_PX = 48;

function branchOf(messages: MessageMap, m: Message) {
  if (m.siblingIds) {
    // Server mode: the server names every version; only the active one is loaded.
    const i = m.siblingIds.indexOf(m.id);
    return {
      branchIndex: i,
      branchTotal: m.siblingIds.length,
      prevId: m.siblingIds[i - 1] ?? null,
      nextId: m.siblingIds[i + 1] ?? null,
    };
  }
  const sibs = siblingsOf(messages, m).filter((s) => s.role !== "summary");
  if (sibs.length < 2) return { branchIndex: 0, branchTotal: 1, prevId: null, nextId: null };
  const i = sibs.findIndex((s) => s.id === m.id);
  return {
    branchIndex: i,
    branchTotal: sibs.length,
    prevId: sibs[i - 1]?.id ?? null,
    nextId: sibs[i + 1]?.id ?? null,
  };
}

/**
 * Older messages inserted above must not move what the reader is looking at: keep the distance
 * from the bottom across the update (React's getSnapshotBeforeUpdate, made for this).
 */
class KeepScroll extends Component<{
  scroller: RefObject<HTMLDivElement | null>;
  firstId: string;
  children: ReactNode;
}> {
  override getSnapshotBeforeUpdate(prev: { firstId: string }): number | null {
    const el = this.props.scroller.current;
    return el && prev.firstId !== this.props.firstId ? el.scrollHeight - el.scrollTop : null;
  }

  override componentDidUpdate(_p: unknown, _s: unknown, fromBottom: number | null): void {
    const el = this.props.scroller.current;
    if (el && fromBottom !== null) el.scrollTop = el.scrollHeight - fromBottom;
  }

  override render(): ReactNode {
    return this.props.children;
  }
}

export function MessageList({ conversationId }: { conversationId: string }) {
  const t = useT();
  const messages = useChat((s) => s.messages.get(conversationId) ?? EMPTY);
  const leafId = useChat((s) => s.conversations.find((c) => c.id === conversationId)?.leafId ?? null);
  const generation = useChat((s) => s.generation);
  const focusId = useChat((s) => s.focusMessageId);
  const comparison = useChat((s) => s.comparisons.get(conversationId) ?? null);
  const thread = withSummaries(messages, threadOf(messages, leafId));
  // Where the newest answer's context began (turns above were left out or summarised).
  const marker = useMemo(() => trimMarker(thread), [thread]);
  const [shown, setShown] = useState(PAGE);
  // Growing the window renders at transition priority: React yields between messages, so
  // opening a long chat or loading older messages never blocks a frame for long.
  const count = useDeferredValue(shown, FIRST);
  const start = Math.max(0, thread.length - count);
  const visible = thread.slice(start);

  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const sentinel = useRef<HTMLDivElement>(null);
  const stuck = useRef(true);
  const [atBottom, setAtBottom] = useState(true);

  // DOM only: the scroll event that follows updates atBottom.
  const toBottom = useCallback(() => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
    stuck.current = true;
  }, []);

  // Open at the newest message.
  useLayoutEffect(() => {
    toBottom();
  }, [toBottom]);

  // A new turn of ours always brings the view down.
  const busyHere = generation?.conversationId === conversationId;
  useLayoutEffect(() => {
    if (busyHere) toBottom();
  }, [busyHere, toBottom]);

  // Keep the bottom in view while content grows (streaming), if the reader is there.
  useEffect(() => {
    const el = content.current;
    if (!el) return;
    const ro = new ResizeObserver(() => {
      const s = scroller.current;
      if (s && stuck.current) s.scrollTop = s.scrollHeight;
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
    };
  }, []);

  // Older pages: load when the top sentinel comes into view, keeping what is on screen in place.
  useEffect(() => {
    const el = sentinel.current;
    const root = scroller.current;
    if (!el || !root || start === 0) return;
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          setShown((n) => n + PAGE);
        }
      },
      { root, rootMargin: "600px 0px 0px 0px" },
    );
    io.observe(el);
    return () => {
      io.disconnect();
    };
  }, [start]);


  // A search hit: make sure its page is rendered, then bring it into view.
  const focusIndex = focusId === null ? -1 : thread.findIndex((m) => m.id === focusId);
  // Compared with the requested window (not the deferred one, which lags behind on purpose).
  if (focusIndex >= 0 && focusIndex < thread.length - shown) setShown(thread.length - focusIndex + 4);
  useLayoutEffect(() => {
    if (focusIndex < 0 || focusIndex < start) return;
    const el = scroller.current?.querySelector<HTMLElement>(`[data-id="${CSS.escape(focusId ?? "")}"]`);
    if (el) {
      stuck.current = false;
      el.scrollIntoView({ block: "center" });
      el.classList.add("flash");
    }
  }, [focusIndex, start, thread.length, focusId]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
    stuck.current = bottom;
    if (bottom !== atBottom) setAtBottom(bottom);
  };

  const busy = generation !== null;
  return (
    <div className="messages-wrap">
      <div className="messages" ref={scroller} onScroll={onScroll} role="region" aria-label={t("messages")} tabIndex={-1}>
        <KeepScroll scroller={scroller} firstId={visible[0]?.id ?? ""}>
        <div className="messages-inner" ref={content}>
          {start > 0 ? (
            <div ref={sentinel} className="older" aria-hidden="true">
              {t("loadingOlder")}
            </div>
          ) : null}
          {visible.map((m) => {
            const live = generation?.answers.find((a) => a.assistantId === m.id) ?? null;
            // Side by side: the answer on the branch stands for all the compared ones.
            if (comparison?.answers.some((a) => a.id === m.id)) {
              return <SideBySide key={`sbs-${comparison.userMessageId}`} comparison={comparison} />;
            }
            // The marker's slot is always there (null or not): the item keeps its place and state.
            return (
              <Fragment key={m.id}>
                {marker?.beforeId === m.id ? <ContextMarker marker={marker} /> : null}
                <MessageItem
                  message={m}
                  busy={busy}
                  buffer={live ? live.buffer : null}
                  {...branchOf(messages, m)}
                />
              </Fragment>
            );
          })}
        </div>
        </KeepScroll>
      </div>
      {!atBottom ? (
        <button type="button" className="to-bottom" aria-label={t("scrollToBottom")} onClick={toBottom}>
          <Icon name="down" />
        </button>
      ) : null}
    </div>
  );
}

