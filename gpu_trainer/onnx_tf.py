"""A small ONNX -> TensorFlow translator for the classifier graphs this trainer exports (MobileNetV2 /
EfficientNet-Lite feature extractors, pooled multi-stage features, the linear head and its calibration),
used by converters.to_tensorflow for the SavedModel and TFLite exports.

Why not a general converter: onnx2tf (the maintained one) only installs beside pins that clash with the
trainer's (numpy 1.26, onnx 1.19, onnxruntime 1.23, tensorflow 2.19) and, in its own venv, fails on these
graphs (its NCHW->NHWC tracking breaks at the stage-4 convolution); onnx-tf is unmaintained. The graphs we
make use a few dozen operators, so we translate those, and refuse any other operator by name
(UnsupportedGraph) rather than guess.

Layout: ONNX is NCHW, TensorFlow's CPU convolutions are NHWC. The input is transposed once; every rank-4
tensor produced by a convolution stays NHWC, elementwise operators and reductions follow it (their axes
remapped), and any other operator receives NCHW again (one transpose, correct whatever it is). The module's
signature keeps the ONNX contract: input `image` [batch, 3, H, W] float32, outputs named as in ONNX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
NCHW_AXIS_IN_NHWC = {0: 0, 1: 3, 2: 1, 3: 2}
ELEMENTWISE = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Clip",
    "Relu",
    "Sigmoid",
    "Abs",
    "Sign",
    "Sqrt",
    "Exp",
    "Neg",
    "HardSigmoid",
    "HardSwish",
    "Max",
    "Min",
}
REDUCTIONS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2"}


class UnsupportedGraph(ValueError):
    """The ONNX graph uses an operator (or a form of one) this translator does not handle."""


class _Value:
    """A tensor during translation: a tf tensor or a numpy constant, and whether it is held as NHWC."""

    __slots__ = ("value", "nhwc")

    def __init__(self, value, nhwc: bool = False):
        self.value, self.nhwc = value, nhwc


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Translator:
    def __init__(self, model: onnx.ModelProto):
        import tensorflow as tf

        self.tf = tf
        self.graph = model.graph
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
        self.constants = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        unknown = sorted({n.op_type for n in self.graph.node} - set(self.OPS) - {"Constant"})
        if unknown:
            raise UnsupportedGraph(f"operators not translated to TensorFlow: {', '.join(unknown)}")
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise UnsupportedGraph("exactly one image input is translated")
        self.input = inputs[0]
        dims = [d.dim_value for d in self.input.type.tensor_type.shape.dim]
        if len(dims) != 4 or not all(dims[1:]):
            raise UnsupportedGraph(
                "the input must be [batch, channels, height, width] with a static image size"
            )
        self.input_shape = dims[1:]
        self.output_names = [o.name for o in self.graph.output]

    # -- running ------------------------------------------------------------------------------------------
    def __call__(self, image):
        tf = self.tf
        env: dict[str, _Value] = {self.input.name: _Value(tf.transpose(image, TO_NHWC), nhwc=True)}
        for name, array in self.constants.items():
            env[name] = _Value(array)
        for node in self.graph.node:
            if node.op_type == "Constant":
                continue
            args = [env[i] if i else None for i in node.input]
            outs = self.OPS[node.op_type](self, node, args, _attrs(node))
            # strict=False: a node may name optional outputs (e.g. Dropout's mask) that no one reads
            for name, out in zip(node.output, outs if isinstance(outs, tuple) else (outs,), strict=False):
                env[name] = out
        return {name: self._nchw(env[name]) for name in self.output_names}

    # -- helpers ------------------------------------------------------------------------------------------
    def _nchw(self, v: _Value):
        if v.nhwc:
            return self.tf.transpose(v.value, TO_NCHW)
        return v.value if not isinstance(v.value, np.ndarray) else self.tf.constant(v.value)

    def _const(self, v: _Value | None) -> np.ndarray:
        if v is None or not isinstance(v.value, np.ndarray):
            raise UnsupportedGraph("a shape, axis or bound computed at run time is not translated")
        return v.value

    def _same_layout(self, args):
        """Operands for an elementwise op: NHWC when any rank-4 operand is, with the others brought along."""
        if not any(a is not None and a.nhwc for a in args):
            return [a.value if a is not None else None for a in args], False
        out = []
        for a in args:
            if a is None or a.nhwc:
                out.append(a.value if a is not None else None)
                continue
            rank = len(a.value.shape)
            size = int(np.prod(a.value.shape)) if rank else 1
            if rank == 4:
                out.append(
                    np.transpose(a.value, TO_NHWC)
                    if isinstance(a.value, np.ndarray)
                    else self.tf.transpose(a.value, TO_NHWC)
                )
            elif size == 1:
                out.append(a.value)
            else:  # a lower-rank operand broadcasts along NCHW's trailing axes: compute in NCHW
                return [self._nchw(x) if x is not None else None for x in args], False
        return out, True

    # -- operators ----------------------------------------------------------------------------------------
    def conv(self, node, args, at):
        tf = self.tf
        x = args[0].value if args[0].nhwc else tf.transpose(self._nchw(args[0]), TO_NHWC)
        w = self._const(args[1]).astype(np.float32)  # [out, in/group, kh, kw]
        group = at.get("group", 1)
        strides = at.get("strides", [1, 1])
        dil = at.get("dilations", [1, 1])
        pads = at.get("pads", [0, 0, 0, 0])
        if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedGraph("Conv auto_pad is not translated")
        if any(pads):
            x = tf.pad(x, [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]])
        padding = "VALID"
        if group == 1:
            y = tf.nn.conv2d(
                x, np.transpose(w, (2, 3, 1, 0)), strides=[1, *strides, 1], padding=padding, dilations=dil
            )
        elif w.shape[1] == 1 and group == w.shape[0]:
            y = tf.nn.depthwise_conv2d(
                x, np.transpose(w, (2, 3, 0, 1)), strides=[1, *strides, 1], padding=padding, dilations=dil
            )
        else:
            raise UnsupportedGraph(f"grouped Conv with group={group} is not translated")
        if len(args) > 2 and args[2] is not None:
            y = tf.nn.bias_add(y, self._const(args[2]).astype(np.float32))
        return _Value(y, nhwc=True)

    def elementwise(self, node, args, at):
        tf = self.tf
        op = node.op_type
        if op == "Clip":
            lo = self._const(args[1]) if len(args) > 1 and args[1] is not None else at.get("min")
            hi = self._const(args[2]) if len(args) > 2 and args[2] is not None else at.get("max")
            (x,), nhwc = self._same_layout(args[:1])
            if lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0:
                return _Value(tf.nn.relu6(x), nhwc)
            y = x
            if lo is not None:
                y = tf.maximum(y, np.float32(lo))
            if hi is not None:
                y = tf.minimum(y, np.float32(hi))
            return _Value(y, nhwc)
        values, nhwc = self._same_layout(args)
        if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
            fn = {
                "Add": tf.add,
                "Sub": tf.subtract,
                "Mul": tf.multiply,
                "Div": tf.divide,
                "Max": tf.maximum,
                "Min": tf.minimum,
            }[op]
            y = tf.convert_to_tensor(values[0])
            for other in values[1:]:
                y = fn(y, tf.cast(other, y.dtype))
            return _Value(y, nhwc)
        x = tf.convert_to_tensor(values[0])
        if op == "HardSigmoid":
            return _Value(tf.clip_by_value(x * at.get("alpha", 0.2) + at.get("beta", 0.5), 0.0, 1.0), nhwc)
        if op == "HardSwish":
            return _Value(x * tf.nn.relu6(x + 3.0) / 6.0, nhwc)
        fn = {
            "Relu": tf.nn.relu,
            "Sigmoid": tf.sigmoid,
            "Abs": tf.abs,
            "Sign": tf.sign,
            "Sqrt": tf.sqrt,
            "Exp": tf.exp,
            "Neg": tf.negative,
        }[op]
        return _Value(fn(x), nhwc)

    def reduce(self, node, args, at):
        tf = self.tf
        axes = at.get("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = self._const(args[1]).tolist()
        keep = bool(at.get("keepdims", 1))
        x = args[0]
        rank = len(x.value.shape)
        axes = list(range(rank)) if axes is None else [a % rank for a in axes]
        if x.nhwc:
            mapped = [NCHW_AXIS_IN_NHWC[a] for a in axes]
            left = [a for a in range(4) if a not in axes]
            # without keepdims the remaining axes must keep NCHW order: true when C is not after H/W kept
            if not keep and left not in ([0], [0, 1], [1], []):
                return self.reduce(node, [_Value(self._nchw(x)), *args[1:]], at)
            value, axes_used, stays = x.value, mapped, keep
        else:
            value, axes_used, stays = x.value, axes, False
        fn = {
            "ReduceMean": tf.reduce_mean,
            "ReduceSum": tf.reduce_sum,
            "ReduceMax": tf.reduce_max,
            "ReduceL2": lambda v, axis, keepdims: tf.sqrt(
                tf.reduce_sum(tf.square(v), axis=axis, keepdims=keepdims)
            ),
        }[node.op_type]
        return _Value(fn(value, axis=axes_used, keepdims=keep), nhwc=x.nhwc and stays)

    def concat(self, node, args, at):
        axis = at["axis"]
        if all(a.nhwc for a in args):
            return _Value(self.tf.concat([a.value for a in args], NCHW_AXIS_IN_NHWC[axis % 4]), nhwc=True)
        return _Value(self.tf.concat([self._nchw(a) for a in args], axis))

    def matmul(self, node, args, at):
        a, b = (self._nchw(x) for x in args)
        return _Value(self.tf.matmul(a, b))

    def gemm(self, node, args, at):
        tf = self.tf
        a, b = self._nchw(args[0]), self._nchw(args[1])
        y = tf.matmul(a, b, transpose_a=bool(at.get("transA", 0)), transpose_b=bool(at.get("transB", 0)))
        y = y * at.get("alpha", 1.0)
        if len(args) > 2 and args[2] is not None:
            y = y + at.get("beta", 1.0) * self._nchw(args[2])
        return _Value(y)

    def softmax(self, node, args, at):
        return _Value(self.tf.nn.softmax(self._nchw(args[0]), axis=at.get("axis", -1)))

    def slice(self, node, args, at):
        x = self._nchw(args[0])
        starts, ends = self._const(args[1]), self._const(args[2])
        rank = len(x.shape)
        axes = self._const(args[3]) if len(args) > 3 and args[3] is not None else np.arange(len(starts))
        steps = (
            self._const(args[4]) if len(args) > 4 and args[4] is not None else np.ones(len(starts), np.int64)
        )
        index = [slice(None)] * rank
        big = np.iinfo(np.int64).max // 2
        for s, e, a, st in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist(), strict=True):
            index[a % rank] = slice(int(s), None if abs(e) >= big else int(e), int(st))
        return _Value(x[tuple(index)])

    def gather(self, node, args, at):
        idx = self._const(args[1])
        return _Value(self.tf.gather(self._nchw(args[0]), idx.astype(np.int64), axis=at.get("axis", 0)))

    def unsqueeze(self, node, args, at):
        axes = at.get("axes")
        if axes is None:
            axes = self._const(args[1]).tolist()
        y = self._nchw(args[0])
        for a in sorted(int(a) % (len(y.shape) + len(axes)) for a in axes):
            y = self.tf.expand_dims(y, a)
        return _Value(y)

    def flatten(self, node, args, at):
        x = self._nchw(args[0])
        axis = at.get("axis", 1)
        shape = self.tf.shape(x)
        return _Value(self.tf.reshape(x, self.tf.stack([self.tf.reduce_prod(shape[:axis]), -1])))

    def global_average_pool(self, node, args, at):
        x = args[0]
        if x.nhwc:
            return _Value(self.tf.reduce_mean(x.value, axis=[1, 2], keepdims=True), nhwc=True)
        return _Value(self.tf.reduce_mean(x.value, axis=[2, 3], keepdims=True))

    OPS = {
        "Conv": conv,
        "Concat": concat,
        "MatMul": matmul,
        "Gemm": gemm,
        "Softmax": softmax,
        "Slice": slice,
        "Gather": gather,
        "Unsqueeze": unsqueeze,
        "Flatten": flatten,
        "GlobalAveragePool": global_average_pool,
        **dict.fromkeys(ELEMENTWISE, elementwise),
        **dict.fromkeys(REDUCTIONS, reduce),
    }


def to_module(onnx_path: Path):
    """A tf.Module whose `serve(image)` computes the ONNX graph (signature: image [None, C, H, W] float32)."""
    import tensorflow as tf

    translator = Translator(onnx.load(str(onnx_path)))
    c, h, w = translator.input_shape

    class Exported(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, c, h, w], tf.float32, name=translator.input.name)])
        def serve(self, image):
            return translator(image)

    module = Exported()
    module.output_names = translator.output_names
    return module
