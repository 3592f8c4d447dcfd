"""Kernels of NonMaxSuppression: the selection per (batch, class) work item, the total count (a dim
the run binds), then the [count, 3] rows."""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith, func
from xdsl.dialects.builtin import IntegerType, f32, i32, i64
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.sorting import heapify, ordered_bits, packed_key, pop_min

i1 = IntegerType(1)
_INDEX_MASK = (1 << 32) - 1  # the box index bits of a rank key

NMS_SELECT_FIELDS = ("boxes", "scores", "max_output", "iou", "score", "order", "selected", "counts", "status",
                     "code", "classes", "n")
NMS_TOTAL_FIELDS = ("counts", "total", "items")
NMS_ROWS_FIELDS = ("selected", "counts", "out", "classes", "n", "items")


@dataclass(frozen=True)
class NmsSpec:
    center_point_box: bool
    score_threshold: bool

    @property
    def name(self) -> str:
        return f"nms_select_{'center' if self.center_point_box else 'corners'}{'_thr' if self.score_threshold else ''}"


class _Box:
    """A box's extent in float32 as onnxruntime computes it: corners in either order, or a center
    and a size halved."""

    def __init__(self, kb: KernelBuilder, boxes, index, center: bool):
        at = [kb.load(boxes, kb.add(kb.mul(index, kb.const(4)), kb.const(c)), elem=f32) for c in range(4)]
        if center:
            half_w, half_h = (kb.fdiv(v, kb.vconst(2.0, f32)) for v in at[2:])
            self.x0, self.x1 = kb.fsub(at[0], half_w), kb.fadd(at[0], half_w)
            self.y0, self.y1 = kb.fsub(at[1], half_h), kb.fadd(at[1], half_h)
        else:
            self.y0, self.y1 = _ordered(kb, at[0], at[2])
            self.x0, self.x1 = _ordered(kb, at[1], at[3])
        self.area = kb.fmul(kb.fsub(self.x1, self.x0), kb.fsub(self.y1, self.y0))


def _ordered(kb: KernelBuilder, a, b):
    less = kb.fcmp("olt", a, b)
    return kb.select(less, a, b), kb.select(less, b, a)


def _overlaps(kb: KernelBuilder, a: _Box, b: _Box, iou) -> SSAValue:
    """IoU(a, b) > iou, false for boxes that do not intersect or have no area (onnxruntime's tests)."""
    zero = kb.vconst(0.0, f32)
    w = kb.fsub(_fmin(kb, a.x1, b.x1), _fmax(kb, a.x0, b.x0))
    h = kb.fsub(_fmin(kb, a.y1, b.y1), _fmax(kb, a.y0, b.y0))
    inter = kb.fmul(w, h)
    union = kb.fsub(kb.fadd(a.area, b.area), inter)
    valid = kb.and_(kb.and_(kb.fcmp("ogt", w, zero), kb.fcmp("ogt", h, zero)),
                    kb.and_(kb.and_(kb.fcmp("ogt", inter, zero), kb.fcmp("ogt", union, zero)),
                            kb.and_(kb.fcmp("ogt", a.area, zero), kb.fcmp("ogt", b.area, zero))))
    return kb.and_(valid, kb.fcmp("ogt", kb.fdiv(inter, union), iou))


def _fmin(kb, a, b):
    return kb.select(kb.fcmp("olt", a, b), a, b)


def _fmax(kb, a, b):
    return kb.select(kb.fcmp("ogt", a, b), a, b)


def nms_select_kernel(spec: NmsSpec) -> func.FuncOp:
    """Work item (batch, class): the candidates (score above the threshold, if any) as rank keys
    into a min-heap at order[item * n:]; popped best first, each kept unless it overlaps one kept
    before, until max(max_output, 0) are kept (as onnxruntime's priority queue: no more of the
    candidates is ordered than that takes): their box indices into selected[item * n:], their
    number into counts[item]. An IoU threshold outside [0, 1] (or NaN) stores `code` to *status
    and selects nothing."""
    buffers = ("boxes", "scores", "max_output", "iou", "score", "order", "selected", "counts", "status")
    kb = KernelBuilder(spec.name, Signature.of(NMS_SELECT_FIELDS, buffers=buffers))
    f = kb.fields
    zero, one, n = kb.const(0), kb.const(1), f["n"]
    iou = kb.load(f["iou"], zero, elem=f32)
    bad_iou = kb.or_(kb.fcmp("ult", iou, kb.vconst(0.0, f32)), kb.fcmp("ugt", iou, kb.vconst(1.0, f32)))
    with kb.if_(bad_iou):
        kb.store(f["code"], f["status"], zero, elem=i64)
    max_output = kb.select(bad_iou, zero, kb.max(kb.load(f["max_output"], zero, elem=i64), zero))
    with kb.loop(kb.begin, kb.end) as item:
        batch_boxes = kb.mul(kb.div(item.iv, f["classes"]), kb.mul(n, kb.const(4)))
        boxes = kb.gep(f["boxes"], batch_boxes, f32)
        scores = kb.gep(f["scores"], kb.mul(item.iv, n), f32)
        keys = kb.mul(item.iv, n)
        with kb.loop(0, n, carried=[zero]) as cand:
            m, score = cand.carried[0], kb.load(scores, cand.iv, elem=f32)
            kb.store(_rank_key(kb, score, cand.iv), f["order"], kb.add(keys, m), elem=i64)
            if spec.score_threshold:
                above = kb.fcmp("ogt", score, kb.load(f["score"], zero, elem=f32))
                cand.next = [kb.add(m, kb.select(above, one, zero))]
            else:
                cand.next = [kb.add(m, one)]
        m = cand.results[0]
        heapify(kb, f["order"], keys, m)
        kept = kb.mul(item.iv, n)
        with kb.loop(0, m, carried=[zero]) as cand:
            count = cand.carried[0]

            def consider():
                left = kb.sub(m, cand.iv)  # candidates still in the heap
                box = kb.and_(pop_min(kb, f["order"], keys, left), kb.const(_INDEX_MASK))
                b = _Box(kb, boxes, box, spec.center_point_box)
                with kb.loop(0, count, carried=[kb.const(0, i1)]) as prev:
                    def overlaps_kept():
                        other = _Box(kb, boxes, kb.load(f["selected"], kb.add(kept, prev.iv), elem=i64),
                                     spec.center_point_box)
                        return [_overlaps(kb, other, b, iou)]

                    prev.next = kb.if_else(prev.carried[0], lambda: [prev.carried[0]], overlaps_kept)
                kb.store(box, f["selected"], kb.add(kept, count), elem=i64)  # count <= cand.iv < n
                return [kb.add(count, kb.select(prev.results[0], zero, one))]

            cand.next = kb.if_else(kb.cmp("slt", count, max_output), consider, lambda: [count])
        kb.store(cand.results[0], f["counts"], item.iv, elem=i64)
    return kb.finish()


def _rank_key(kb: KernelBuilder, score: SSAValue, index: SSAValue) -> SSAValue:
    """An int64 whose unsigned order is falling score, then rising index (onnxruntime's order)."""
    return packed_key(kb, kb._ins(arith.XOrIOp(ordered_bits(kb, score), kb.const(-1, i32))), index)


def nms_total_kernel() -> func.FuncOp:
    """total[0] = the sum of counts[0:items]. One work item."""
    kb = KernelBuilder("nms_total", Signature.of(NMS_TOTAL_FIELDS, buffers=("counts", "total")))
    f = kb.fields
    with kb.loop(0, f["items"], carried=[kb.const(0)]) as lp:
        lp.next = [kb.add(lp.carried[0], kb.load(f["counts"], lp.iv, elem=i64))]
    kb.store(lp.results[0], f["total"], kb.const(0), elem=i64)
    return kb.finish()


def nms_rows_kernel() -> func.FuncOp:
    """out = the (batch, class, box) rows of the selections, item by item. One work item."""
    kb = KernelBuilder("nms_rows", Signature.of(NMS_ROWS_FIELDS, buffers=("selected", "counts", "out")))
    f = kb.fields
    three = kb.const(3)
    with kb.loop(0, f["items"], carried=[kb.const(0)]) as item:
        row = item.carried[0]
        count = kb.load(f["counts"], item.iv, elem=i64)
        batch, cls = kb.div(item.iv, f["classes"]), kb.rem(item.iv, f["classes"])
        with kb.loop(0, count) as s:
            at = kb.mul(kb.add(row, s.iv), three)
            kb.store(batch, f["out"], at, elem=i64)
            kb.store(cls, f["out"], kb.add(at, kb.const(1)), elem=i64)
            box = kb.load(f["selected"], kb.add(kb.mul(item.iv, f["n"]), s.iv), elem=i64)
            kb.store(box, f["out"], kb.add(at, kb.const(2)), elem=i64)
        item.next = [kb.add(row, count)]
    return kb.finish()
