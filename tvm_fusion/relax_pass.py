"""FuseByPlan: a Relax pass that fuses operators by a given fusion plan instead of FuseOps.

TVM's ``relax.transform.FuseOps`` groups operators by their TIR op pattern (injective,
reduction, out-elementwise-fusable, ...). Layer fusion for an accelerator needs a different
grouping: one chosen by a search over the accelerator's on-chip buffer and DRAM traffic. This
pass takes that grouping, given as groups of binding names of ``main``'s dataflow block, and
emits exactly what ``FuseOps`` emits for its own groups: one private Relax function per group
with attribute ``"Primitive"``, called from ``main``; ``FuseTIR`` then merges each group into
one PrimFunc.

The pass runs on the *high-level* module (as ``graph.canonicalize`` returns it), before
``LegalizeOps``: binding names there are exactly the OpGraph node names, so a plan maps onto
the module with no guessing even for operators whose legalisation emits several bindings.
``LegalizeOps`` then legalises the operators inside each group function, and ``FuseTIR`` fuses
them. Like ``FuseOps``, non-scalar constants become parameters of the group function and are
passed at the call site; scalar constants stay inline.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

import tvm
import tvm_ffi
from tvm import relax

from .plan import PlanError, priority_topological_order

# PlanError raised inside a pass crosses TVM's FFI; registered, it arrives as itself.
tvm_ffi.register_error("PlanError", PlanError)

#: Module attribute holding the plan (JSON) that ``FuseByPlan`` applies when given no groups.
PLAN_ATTR = "tvm_fusion.plan"
#: Prefix of the group functions; FuseTIR keeps the name for the fused PrimFunc.
GROUP_FUNC_PREFIX = "fused_g"


def _is_op_binding(binding: relax.Binding) -> bool:
    """An operator binding: ``v = R.some_op(...)`` (one OpGraph node)."""
    return (
        isinstance(binding, relax.VarBinding)
        and isinstance(binding.value, relax.Call)
        and isinstance(binding.value.op, tvm.ir.Op)
    )


def _free_vars(expr: relax.Expr) -> list[relax.Var]:
    """Vars an ANF binding value reads (arguments, nested tuples), in argument order."""
    out: list[relax.Var] = []

    def visit(e):
        if isinstance(e, relax.Var):
            if not any(e.same_as(v) for v in out):
                out.append(e)
        elif isinstance(e, relax.Tuple):
            for f in e.fields:
                visit(f)
        elif isinstance(e, relax.TupleGetItem):
            visit(e.tuple_value)
        elif isinstance(e, relax.Call):
            for a in e.args:
                visit(a)

    visit(expr)
    return out


def _substitute(expr: relax.Expr, vmap: dict) -> relax.Expr:
    """Replace vars and constants (keys of ``vmap``) in an ANF binding value."""
    if isinstance(expr, (relax.Var, tvm.ir.expr.Constant)):
        return vmap.get(expr, expr)
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_substitute(f, vmap) for f in expr.fields])
    if isinstance(expr, relax.TupleGetItem):
        return relax.TupleGetItem(_substitute(expr.tuple_value, vmap), expr.index)
    if isinstance(expr, relax.Call):
        return relax.Call(expr.op, [_substitute(a, vmap) for a in expr.args], expr.attrs,
                          expr.ty_args)
    return expr


def _lifted_constants(expr: relax.Expr) -> list[tvm.ir.expr.Constant]:
    """Non-scalar constants of a binding value; FuseOps passes these as function arguments."""
    out: list[tvm.ir.expr.Constant] = []

    def visit(e):
        if isinstance(e, tvm.ir.expr.GenericConst):  # a tensor constant (not an IntImm etc.)
            if len(e.value.shape) > 0 and not any(e.same_as(c) for c in out):
                out.append(e)
        elif isinstance(e, relax.Tuple):
            for f in e.fields:
                visit(f)
        elif isinstance(e, relax.Call):
            for a in e.args:
                visit(a)

    visit(expr)
    return out


def _main_block(mod: tvm.IRModule, func_name: str) -> tuple[relax.Function, relax.DataflowBlock]:
    if func_name not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise PlanError(f"FuseByPlan: module has no function {func_name!r} to fuse")
    func = mod[func_name]
    body = func.body
    if not (isinstance(body, relax.SeqExpr) and len(body.blocks) == 1
            and isinstance(body.blocks[0], relax.DataflowBlock)):
        raise PlanError(
            f"FuseByPlan: {func_name!r} must be one dataflow block followed by its return value "
            "(as tvm_fusion.graph.canonicalize() returns); canonicalize the module first")
    return func, body.blocks[0]


def op_binding_names(mod: tvm.IRModule, func_name: str = "main") -> list[str]:
    """Names of the operator bindings of ``func_name``'s dataflow block, in binding order."""
    _, block = _main_block(mod, func_name)
    return [b.var.name for b in block.bindings if _is_op_binding(b)]


def _assign_units(block: relax.DataflowBlock, groups: Sequence[Sequence[str]]) -> list[int]:
    """Unit index per binding: groups are units 0..G-1, each other binding its own unit.

    Raises PlanError for unknown, duplicated or missing operator bindings.
    """
    index: dict[str, int] = {}
    for b in block.bindings:
        if _is_op_binding(b):
            name = b.var.name
            if name in index:
                raise PlanError(f"FuseByPlan: binding name {name!r} occurs twice in main; "
                                "names must be unique (canonicalize() guarantees it)")
            index[name] = len(index)
    group_of: dict[str, int] = {}
    for g, names in enumerate(groups):
        if not names:
            raise PlanError(f"FuseByPlan: group {g} is empty")
        for name in names:
            if name not in index:
                raise PlanError(
                    f"FuseByPlan: group {g} names {name!r}, which is not an operator binding of "
                    "main; the plan was made for a different module (re-plan it for this one)")
            if name in group_of:
                raise PlanError(f"FuseByPlan: binding {name!r} is in groups {group_of[name]} "
                                f"and {g}; each binding must be in exactly one group")
            group_of[name] = g
    missing = [n for n in index if n not in group_of]
    if missing:
        raise PlanError(f"FuseByPlan: {len(missing)} operator bindings are in no group, "
                        f"e.g. {missing[:5]}; a plan must cover every operator binding")
    units, nxt = [], len(groups)
    for b in block.bindings:
        if _is_op_binding(b):
            units.append(group_of[b.var.name])
        else:
            units.append(nxt)
            nxt += 1
    return units


def _topological_units(block, units: list[int], num_units: int, groups) -> list[int]:
    """Units in a dependency order (ties by first binding); a cycle means a non-convex plan."""
    producer = {}
    for i, b in enumerate(block.bindings):
        producer[b.var] = units[i]
    deps: list[set[int]] = [set() for _ in range(num_units)]
    first = [len(units)] * num_units
    for i, b in enumerate(block.bindings):
        u = units[i]
        first[u] = min(first[u], i)
        for v in _free_vars(b.value):
            p = producer.get(v)
            if p is not None and p != u:
                deps[u].add(p)
    users: list[list[int]] = [[] for _ in range(num_units)]
    for u, d in enumerate(deps):
        for p in d:
            users[p].append(u)
    order = priority_topological_order(users, first)
    if len(order) < num_units:
        ordered = set(order)
        on_cycle = [g for g in range(len(groups)) if g not in ordered and _reaches(users, g, g)]
        detail = "; ".join(f"group {g}: {list(groups[g])[:6]}" for g in on_cycle[:4])
        raise PlanError(
            "FuseByPlan: the plan is not convex: a data path leaves a group and re-enters it, so "
            f"the groups cannot be ordered. Groups on the cycle: {detail}. Split those groups "
            "(tvm_fusion.plan.is_convex checks a group)")
    return order


def _reaches(users: list[list[int]], src: int, dst: int) -> bool:
    """Whether a path of one or more edges leads from unit ``src`` to unit ``dst``."""
    seen, todo = set(), list(users[src])
    while todo:
        u = todo.pop()
        if u == dst:
            return True
        if u not in seen:
            seen.add(u)
            todo.extend(users[u])
    return False


def _short(op_name: str) -> str:
    return op_name.rsplit(".", 1)[-1]


def fuse_by_plan(mod: tvm.IRModule, groups: Sequence[Sequence[str]],
                 func_name: str = "main") -> tvm.IRModule:
    """Return ``mod`` with ``func_name``'s operator bindings grouped as ``groups``.

    Group ``g`` becomes the private function ``fused_g<g>_<ops>`` with ``"Primitive": True``
    (several outputs: a tuple, unpacked in ``main`` with TupleGetItem). Bindings that are not
    operator calls (tuples, aliases) stay in ``main``.
    """
    groups = [list(g) for g in groups]
    func, block = _main_block(mod, func_name)
    units = _assign_units(block, groups)
    order = _topological_units(block, units, max(units, default=-1) + 1, groups)

    bindings = list(block.bindings)
    members: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        members.setdefault(u, []).append(i)
    unit_of_var = {b.var: units[i] for i, b in enumerate(bindings)}
    # Vars read outside their unit (by another unit or by main's return value).
    used_outside: set = set()
    for i, b in enumerate(bindings):
        for v in _free_vars(b.value):
            if v in unit_of_var and unit_of_var[v] != units[i]:
                used_outside.add(v)
    for v in _free_vars(func.body.body):
        used_outside.add(v)

    # main is rebuilt under its own name, so start from the module without it.
    rest = {gv: f for gv, f in mod.functions_items() if gv.name_hint != func_name}
    bb = relax.BlockBuilder(tvm.IRModule(rest, attrs=mod.attrs, global_infos=mod.global_infos))
    group_funcs: dict[int, tuple[relax.GlobalVar, list, list]] = {}
    for g in range(len(groups)):
        group_funcs[g] = _emit_group_function(bb, g, [bindings[i] for i in members[g]],
                                              used_outside)

    vmap: dict = {}
    attrs = dict(func.attrs) if func.attrs else None
    with bb.function(func_name, params=list(func.params), attrs=attrs, pure=func.is_pure):
        with bb.dataflow():
            for u in order:
                if u in group_funcs:
                    gvar, args, outs = group_funcs[u]
                    call = relax.Call(gvar, [_substitute(a, vmap) for a in args])
                    if len(outs) == 1:
                        vmap[outs[0]] = _emit(bb, call, outs[0])
                    else:
                        tup = bb.emit(call, name_hint=f"{GROUP_FUNC_PREFIX}{u}_out")
                        for k, v in enumerate(outs):
                            vmap[v] = _emit(bb, relax.TupleGetItem(tup, k), v)
                else:
                    (i,) = members[u]
                    vmap[bindings[i].var] = _emit(bb, _substitute(bindings[i].value, vmap),
                                                  bindings[i].var)
        bb.emit_func_output(_substitute(func.body.body, vmap))
    return bb.get()


def _emit(bb: relax.BlockBuilder, value: relax.Expr, like: relax.Var) -> relax.Var:
    """Emit ``value`` named like ``like``; a dataflow output stays an output."""
    if isinstance(like, relax.DataflowVar):
        return bb.emit(value, name_hint=like.name)
    return bb.emit_output(value, name_hint=like.name)


def _emit_group_function(bb, g: int, group_bindings: list, used_outside: set) -> tuple[relax.GlobalVar, list, list]:
    """Add group ``g``'s Primitive function; return (global var, call arguments, outputs)."""
    inside = {b.var for b in group_bindings}
    args: list = []
    for b in group_bindings:
        for v in _free_vars(b.value):
            if v not in inside and not any(v.same_as(a) for a in args):
                args.append(v)
        for c in _lifted_constants(b.value):
            if not any(c.same_as(a) for a in args):
                args.append(c)
    outs = [b.var for b in group_bindings if b.var in used_outside]
    if not outs:
        raise PlanError(f"FuseByPlan: group {g} ({[b.var.name for b in group_bindings]}) "
                        "produces nothing used outside it; dead code should be removed first")
    params, vmap = [], {}
    for k, a in enumerate(args):
        name = a.name if isinstance(a, relax.Var) else f"param_{k}"
        p = relax.Var(name, a.ty)
        params.append(p)
        vmap[a] = p
    ops = [_short(b.value.op.name) for b in group_bindings]
    fname = f"{GROUP_FUNC_PREFIX}{g}_" + "_".join(ops[:4]) + ("_etc" if len(ops) > 4 else "")
    fb = relax.BlockBuilder()
    with fb.function(fname, params=params, attrs={"Primitive": True}, private=True):
        with fb.dataflow():
            for b in group_bindings:
                vmap[b.var] = fb.emit(_substitute(b.value, vmap), name_hint=b.var.name)
            ret = [vmap[v] for v in outs]
            out = fb.emit_output(ret[0] if len(ret) == 1 else relax.Tuple(ret))
        fb.emit_func_output(out)
    gvar = bb.add_func(fb.get()[fname], fname)
    return gvar, args, outs


def plan_groups_from_module(mod: tvm.IRModule) -> list[list[str]]:
    """The groups (binding names) of the plan attached to ``mod`` under ``PLAN_ATTR``."""
    attrs = mod.attrs
    if attrs is None or PLAN_ATTR not in attrs:
        raise PlanError(f"FuseByPlan: no groups given and the module has no {PLAN_ATTR!r} "
                        "attribute; pass groups=... or run the PlanFusion pass first")
    return [list(g["bindings"]) for g in json.loads(str(attrs[PLAN_ATTR]))["groups"]]


@tvm.transform.module_pass(opt_level=0, name="FuseByPlan")
class FuseByPlan:
    """Group ``main``'s operators as a fusion plan says, replacing ``relax.transform.FuseOps``.

    Run it on the high-level module, before ``LegalizeOps``; follow with ``LegalizeOps``,
    ``FoldConstant`` and ``FuseTIR`` (``tvm_fusion.pipeline`` does this). With ``groups=None``
    the groups come from the module's ``"tvm_fusion.plan"`` attribute (set by ``PlanFusion``).

    Parameters
    ----------
    groups : list of lists of binding names, or None
        A partition of ``main``'s operator bindings; every group convex.
    """

    def __init__(self, groups: Iterable[Sequence[str]] | None = None, func_name: str = "main"):
        self.groups = None if groups is None else [list(g) for g in groups]
        self.func_name = func_name

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        groups = self.groups if self.groups is not None else plan_groups_from_module(mod)
        return fuse_by_plan(mod, groups, self.func_name)


# ---- TVM's own FuseOps grouping, as binding names (the baseline we compare against) --------

def _call_tir_parts(value: relax.Expr):
    """(PrimFunc name, argument list) of ``R.call_tir(f, (args...))``, else None."""
    if (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
            and value.op.name == "relax.call_tir"):
        args = value.args[1]
        return value.args[0].name_hint, list(args.fields if isinstance(args, relax.Tuple) else [args])
    return None


def tvm_fuseops_groups(mod: tvm.IRModule, target: str | dict = "llvm",
                       func_name: str = "main") -> list[list[str]]:
    """The groups TVM's default ``FuseOps`` forms on ``mod``, as binding names of ``mod``.

    Runs the default CPU legalisation (LegalizeOps, AnnotateTIROpPattern, FoldConstant,
    FuseOps) on the high-level module ``mod``; LegalizeOps keeps binding names, FuseOps does
    not rename a fused function's inner bindings except its output, so each fused call's inner
    ``call_tir`` bindings are matched to the legalised ones by PrimFunc and arguments.
    """
    with tvm.target.Target(target):
        low = tvm.transform.Sequential([relax.transform.LegalizeOps(),
                                        relax.transform.AnnotateTIROpPattern(),
                                        relax.transform.FoldConstant()])(mod)
    fused = relax.transform.FuseOps()(low)
    names = op_binding_names(mod, func_name)
    _, low_block = _main_block(low, func_name)
    by_name = {b.var.name: b for b in low_block.bindings}
    candidates: dict[str, list] = {}  # PrimFunc name -> legalised bindings calling it
    for b in low_block.bindings:
        parts = _call_tir_parts(b.value)
        if parts is not None:
            candidates.setdefault(parts[0], []).append(b)
    lost = [n for n in names if n not in by_name or _call_tir_parts(by_name[n].value) is None]
    if lost:
        raise PlanError(f"tvm_fuseops_groups: bindings {lost[:5]} do not survive legalisation as "
                        "one call_tir each; cannot map FuseOps' groups back to them")
    used: set[str] = set()

    def match(fname: str, args: list) -> relax.Var:
        """The unused legalised binding calling ``fname`` on ``args`` (original exprs)."""
        for b in candidates.get(fname, []):
            if b.var.name in used:
                continue
            _, bargs = _call_tir_parts(b.value)
            if len(bargs) == len(args) and all(x.same_as(y) or (
                    isinstance(x, tvm.ir.expr.Constant) and tvm.ir.structural_equal(x, y))
                    for x, y in zip(bargs, args)):
                used.add(b.var.name)
                return b.var
        raise PlanError(f"tvm_fuseops_groups: no legalised binding calls {fname} with these "
                        "arguments; FuseOps changed the program in an unexpected way")

    orig: dict = {}  # var of the fused module -> original var (or list of them, for tuples)
    groups: list[list[str]] = []
    _, fused_block = _main_block(fused, func_name)
    for b in fused_block.bindings:
        value = b.value
        parts = _call_tir_parts(value)
        if parts is not None:
            orig[b.var] = match(parts[0], [orig.get(a, a) for a in parts[1]])
            groups.append([orig[b.var].name])
        elif isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar):
            inner = fused[value.op]
            env = {p: orig.get(a, a) for p, a in zip(inner.params, value.args)}
            members = []
            for ib in inner.body.blocks[0].bindings:
                iparts = _call_tir_parts(ib.value)
                if iparts is None:  # an alias or tuple inside the fused function
                    env[ib.var] = _map_expr(ib.value, env)
                    continue
                env[ib.var] = match(iparts[0], [env.get(a, a) for a in iparts[1]])
                members.append(env[ib.var].name)
            groups.append(members)
            orig[b.var] = _map_expr(inner.body.body, env)
        else:
            orig[b.var] = _map_expr(value, orig)
    missing = [n for n in names if n not in used]
    if missing:
        raise PlanError(f"tvm_fuseops_groups: FuseOps' output does not cover bindings {missing[:5]}")
    return groups


def _map_expr(expr: relax.Expr, env: dict):
    """Original var(s) an alias, tuple or tuple item stands for."""
    if isinstance(expr, relax.Var):
        return env.get(expr, expr)
    if isinstance(expr, relax.Tuple):
        return [_map_expr(f, env) for f in expr.fields]
    if isinstance(expr, relax.TupleGetItem):
        whole = _map_expr(expr.tuple_value, env)
        return whole[expr.index] if isinstance(whole, list) else expr
    return expr


def fuseops_plan(graph, mod: tvm.IRModule, accel, splitter: str = "random", seed: int = 0,
                 groups: list[list[str]] | None = None):
    """TVM's FuseOps grouping of ``mod`` as a Plan on ``graph``, made legal for ``accel``.

    FuseOps knows nothing of the on-chip buffer, so its groups of two or more ops whose F_β
    exceeds the buffer are split by ``splitter`` (the paper's random split by default).
    ``groups``: ``tvm_fuseops_groups(mod)`` if already computed (it legalises the module).
    Returns ``(plan, num_split)``: the legal plan and how many FuseOps groups were split.
    """
    import random

    from .cost import CostModel
    from .plan import Plan
    from .search.splitters import make_splitter

    ids = {node.name: node.id for node in graph.nodes}
    cost_model = CostModel(graph, accel)
    split = make_splitter(splitter)
    rng = random.Random(seed)
    legal, num_split = [], 0
    for names in tvm_fuseops_groups(mod) if groups is None else groups:
        group = tuple(sorted(ids[n] for n in names))
        if len(group) >= 2 and not cost_model.group_cost(group)[2]:
            legal.extend(split.split(group, cost_model, rng))
            num_split += 1
        else:
            legal.append(group)
    return Plan.from_groups(graph, legal, accel), num_split
