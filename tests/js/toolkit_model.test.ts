import { describe, expect, it } from "vitest";

import { defineWidget, onTraits, Registry, type Store } from "../../js/toolkit/model";
import { asModel, FakeModel, props } from "./fixtures";

interface CounterModel {
  count: number;
  label: string;
  _uid: string;
}

/** A store that records what reached it. */
class Recorder implements Store {
  static made: Recorder[] = [];
  messages: unknown[] = [];
  counts: number[] = [];
  disposed = false;
  constructor(readonly start: number) {
    Recorder.made.push(this);
  }
  receive(message: unknown): void {
    this.messages.push(message);
  }
  dispose(): void {
    this.disposed = true;
  }
}

function counter(): { widget: ReturnType<typeof defineWidget<CounterModel, Recorder>>; views: Recorder[] } {
  const views: Recorder[] = [];
  const widget = defineWidget<CounterModel, Recorder>({
    create: (model) => new Recorder(model.get("count")),
    traits: (store) => ({ count: (count) => store.counts.push(count) }),
    view: (store, model, el) => {
      views.push(store);
      el.textContent = `${model.get("label")}: ${store.start}`;
      return () => el.append(" (closed)");
    },
  });
  return { widget, views };
}

const model = (uid = "u1"): FakeModel<CounterModel> => new FakeModel<CounterModel>({ count: 1, label: "n", _uid: uid });

describe("defineWidget", () => {
  it("makes one store per model in initialize, which every view draws", async () => {
    const { widget, views } = counter();
    const m = model();
    const cleanup = (await widget.initialize(props(m))) as () => void;
    expect(m.contents).toEqual([{ type: "snapshot?" }]);
    const store = Recorder.made[Recorder.made.length - 1];
    expect(store.start).toBe(1);

    // anywidget hands render another proxy of the same model: it meets the store by _uid.
    const proxy = new FakeModel<CounterModel>(m.attrs);
    proxy.widget_manager = m.widget_manager;
    const a = document.createElement("div");
    const b = document.createElement("div");
    const closeA = (await widget.render(props(proxy, a))) as () => void;
    const closeB = (await widget.render(props(m, b))) as () => void;
    expect(views).toEqual([store, store]);
    expect(a.textContent).toBe("n: 1");
    expect(proxy.contents).toEqual([]); // no second store, no second snapshot request

    m.emit("msg:custom", { type: "patch" }, []);
    m.set("count", 2);
    m.set("label", "ignored"); // not a trait of the store
    expect(store.messages).toEqual([{ type: "patch" }]);
    expect(store.counts).toEqual([2]);

    closeA();
    // A closed view is emptied, after its own cleanup ran.
    expect(a.childNodes).toHaveLength(0);
    closeB();
    expect(store.disposed).toBe(false);
    cleanup();
    expect(store.disposed).toBe(true);
    expect(m.listeners()).toBe(0);
  });

  it("keeps the stores of two widget managers apart", async () => {
    const { widget, views } = counter();
    const first = model("same");
    const second = model("same");
    second.attrs.count = 5;
    const cleanups = [await widget.initialize(props(first)), await widget.initialize(props(second))] as (() => void)[];
    await widget.render(props(first, document.createElement("div")));
    await widget.render(props(second, document.createElement("div")));
    expect(views.map((store) => store.start)).toEqual([1, 5]);
    for (const cleanup of cleanups) cleanup();
  });

  it("gives a view a store of its own without initialize", async () => {
    const { widget, views } = counter();
    const m = model("alone");
    const el = document.createElement("div");
    const close = (await widget.render(props(m, el))) as () => void;
    expect(m.contents).toEqual([{ type: "snapshot?" }]);
    m.emit("msg:custom", "hello", []);
    expect(views[0].messages).toEqual(["hello"]);
    close();
    expect(views[0].disposed).toBe(true);
    expect(m.listeners()).toBe(0);
  });
});

describe("onTraits", () => {
  it("calls each handler with the trait's new value until stopped", () => {
    const m = model();
    const seen: unknown[] = [];
    const stop = onTraits(asModel(m), { count: (count) => seen.push(count), label: (label) => seen.push(label) });
    m.set("count", 3);
    m.set("label", "x");
    stop();
    m.set("count", 4);
    expect(seen).toEqual([3, "x"]);
    expect(m.listeners()).toBe(0);
  });
});

describe("Registry", () => {
  it("forgets a store only while it is still the model's", () => {
    const registry = new Registry<CounterModel, Recorder>();
    const m = model();
    const old = registry.add(asModel(m), new Recorder(1));
    const replacement = registry.add(asModel(m), new Recorder(2));
    registry.forget(asModel(m), old);
    expect(old.disposed).toBe(true);
    expect(registry.get(asModel(m))).toBe(replacement);
    registry.forget(asModel(m), replacement);
    expect(registry.get(asModel(m))).toBeUndefined();
  });
});
