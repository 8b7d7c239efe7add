/**
 * Binding a widget's per-model store to its anywidget model, for both widgets.
 *
 * A store (the live state of a model, shared by its views) is made in anywidget's
 * `initialize`, once per model, so that no kernel message is lost before the first view; the
 * views draw it. anywidget gives `initialize` and `render` different proxies of the same
 * model, so they meet through the model's `_uid` trait, per widget manager (two notebooks
 * showing saved copies of one widget keep two stores). Without `initialize` (an older
 * anywidget), a view keeps a store of its own.
 *
 * Once bound, the store receives the model's custom messages and trait changes, and the model
 * sends `{type: "snapshot?"}`: a model made while a stream runs (a reloaded page) starts from
 * the synced traits, and the kernel answers with its live state once it is free.
 */

import type { AnyModel, Initialize, Render } from "@anywidget/types";

/** What every widget's model has: the id its store is found by. */
export interface Keyed {
  _uid: string;
}

/** A model's store, as the binding needs it. */
export interface Store {
  /** Handle one custom message from the kernel (with its binary buffers). */
  receive(message: unknown, buffers: DataView[]): void;
  dispose(): void;
}

/** What to do when a trait changes, by trait name (called with the new value). */
export type TraitHandlers<M> = { [K in keyof M]?: (value: M[K]) => void };

/** Follow the traits in `handlers`; returns what stops following them. */
export function onTraits<M extends object>(model: AnyModel<M>, handlers: TraitHandlers<M>): () => void {
  const bound = (Object.keys(handlers) as (keyof M & string)[]).map((key) => {
    const handler = handlers[key] as (value: unknown) => void;
    const listener = (): void => handler(model.get(key));
    model.on(`change:${key}`, listener);
    return [key, listener] as const;
  });
  return () => {
    for (const [key, listener] of bound) model.off(`change:${key}`, listener);
  };
}

/** The stores of one kind of widget, by widget manager and `_uid`. */
export class Registry<M extends Keyed, S extends Store> {
  private readonly byManager = new WeakMap<object, Map<string, S>>();

  private stores(model: AnyModel<M>): Map<string, S> {
    // A model without a manager (a test's) shares one map: the registry's own.
    const key = (model.widget_manager ?? this.byManager) as object;
    let byUid = this.byManager.get(key);
    if (!byUid) {
      byUid = new Map();
      this.byManager.set(key, byUid);
    }
    return byUid;
  }

  get(model: AnyModel<M>): S | undefined {
    return this.stores(model).get(model.get("_uid"));
  }

  /** Make `store` the model's; returns it. */
  add(model: AnyModel<M>, store: S): S {
    this.stores(model).set(model.get("_uid"), store);
    return store;
  }

  /** Drop `store` (if it is still the model's) and dispose of it. */
  forget(model: AnyModel<M>, store: S): void {
    const byUid = this.stores(model);
    if (byUid.get(model.get("_uid")) === store) byUid.delete(model.get("_uid"));
    store.dispose();
  }
}

/** How a widget makes its store, feeds it, and draws it. */
export interface WidgetSpec<M extends Keyed, S extends Store> {
  /** A store from the model's synced traits. */
  create(model: AnyModel<M>): S;
  /** What a change of each synced trait does to the store. */
  traits(store: S, model: AnyModel<M>): TraitHandlers<M>;
  /** Draw one view of the store into `el`; returns what undoes it. */
  view(store: S, model: AnyModel<M>, el: HTMLElement): () => void;
}

/** Feed `store` the model's messages and trait changes, and ask the kernel for a snapshot. */
function bind<M extends Keyed, S extends Store>(spec: WidgetSpec<M, S>, model: AnyModel<M>, store: S): () => void {
  const onMessage = (msg: unknown, buffers: DataView[]): void => store.receive(msg, buffers);
  model.on("msg:custom", onMessage);
  const offTraits = onTraits(model, spec.traits(store, model));
  model.send({ type: "snapshot?" });
  return () => {
    model.off("msg:custom", onMessage);
    offTraits();
  };
}

/** The `initialize` and `render` of an anywidget module, from its spec. */
export function defineWidget<M extends Keyed, S extends Store>(
  spec: WidgetSpec<M, S>,
): { initialize: Initialize<M>; render: Render<M> } {
  const registry = new Registry<M, S>();

  const initialize: Initialize<M> = ({ model }) => {
    const store = registry.get(model) ?? registry.add(model, spec.create(model));
    const unbind = bind(spec, model, store);
    return () => {
      unbind();
      registry.forget(model, store);
    };
  };

  const render: Render<M> = ({ model, el }) => {
    let store = registry.get(model);
    let own: (() => void) | undefined;
    if (!store) {
      // No `initialize` ran (an older anywidget): this view keeps a store of its own.
      const mine = spec.create(model);
      const unbind = bind(spec, model, mine);
      store = mine;
      own = () => {
        unbind();
        mine.dispose();
      };
    }
    const undo = spec.view(store, model, el);
    return () => {
      undo();
      own?.();
      el.replaceChildren();
    };
  };

  return { initialize, render };
}
