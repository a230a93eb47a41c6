#!/usr/bin/env python3
"""Writes the malformed-input corpus of tests/bad/ (deterministic). Each case is listed in
cases.txt as: name | file | stage | expected status | message fragment | inputs
stage: load (amp_model_load), session (amp_session_create), run (amp_session_run with the
given inputs, NAME=FILE.pb separated by commas). Regenerate with: python3 tests/bad/make_bad.py"""
import os
import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = []


def save(model, name, check=False):
    path = os.path.join(HERE, name)
    if check:
        onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return name


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="amprt-tests")
    m.ir_version = 8
    return m


def case(name, file, stage, status, fragment, inputs=""):
    CASES.append(f"{name}|{file}|{stage}|{status}|{fragment}|{inputs}")


def tensor_file(name, arr, tname):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(numpy_helper.from_array(arr, tname).SerializeToString())
    return name


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
good = model([helper.make_node("Relu", ["x"], ["y"], name="relu0")], [X], [Y])
good_bytes = good.SerializeToString()

# files that are not models
open(os.path.join(HERE, "empty.onnx"), "wb").close()
case("empty file", "empty.onnx", "load", "AMP_ERR_PARSE", "empty")
rng = random.Random(1234)
with open(os.path.join(HERE, "garbage.onnx"), "wb") as f:
    f.write(bytes(rng.randrange(256) for _ in range(4096)))
case("garbage bytes", "garbage.onnx", "load", "AMP_ERR_PARSE", "garbage.onnx")
big = model([helper.make_node("Add", ["x", "w"], ["y"], name="add0")], [X], [Y],
            [numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3) + 1, "w")])
b = big.SerializeToString()
with open(os.path.join(HERE, "truncated.onnx"), "wb") as f:
    f.write(b[: len(b) - 20])
case("truncated model", "truncated.onnx", "load", "AMP_ERR_PARSE", "truncated.onnx")
case("missing file", "no_such_model.onnx", "load", "AMP_ERR_IO", "no_such_model.onnx")

# graph structure
m = model([helper.make_node("Relu", ["nowhere"], ["y"], name="reads_undefined")], [X], [Y])
case("undefined value", save(m, "undefined_value.onnx"), "load", "AMP_ERR_INVALID_GRAPH", "reads_undefined")
m = model([helper.make_node("Add", ["x", "b"], ["a"], name="cyc_a"),
           helper.make_node("Relu", ["a"], ["b"], name="cyc_b"),
           helper.make_node("Identity", ["a"], ["y"], name="out")], [X], [Y])
case("cycle", save(m, "cycle.onnx"), "load", "AMP_ERR_INVALID_GRAPH", "cycle")
m = model([helper.make_node("FooBarOp", ["x"], ["y"], name="mystery")], [X], [Y])
case("unknown op", save(m, "unknown_op.onnx"), "session", "AMP_ERR_UNSUPPORTED", "FooBarOp")
m = model([helper.make_node("Relu", ["x"], ["y"], name="p1"), helper.make_node("Neg", ["x"], ["y"], name="p2")], [X], [Y])
case("two producers", save(m, "two_producers.onnx"), "load", "AMP_ERR_INVALID_GRAPH", "more than one producer")
m = model([helper.make_node("Relu", ["x"], ["z"], name="r")], [X], [Y])
case("undefined output", save(m, "undefined_output.onnx"), "load", "AMP_ERR_INVALID_GRAPH", "'y'")
then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])])
C = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
m = model([helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=then_g)], [C, X], [Y])
case("graph attribute", save(m, "graph_attr.onnx"), "load", "AMP_ERR_UNSUPPORTED", "branch")
m = model([helper.make_node("Add", ["x"], ["y"], name="add_one_input")], [X], [Y])
case("missing required input", save(m, "add_one_input.onnx"), "run", "AMP_ERR_INVALID_GRAPH", "add_one_input",
      "x=x23.pb")

# tensors and shapes
t = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], [1.0] * 6)
t.dims[0] = -2
m = model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [X], [Y], [t])
case("negative dim", save(m, "negative_dim.onnx"), "load", "AMP_ERR_PARSE", "'w'")
t = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.ones(6, np.float32).tobytes(), raw=True)
t.dims[0] = 1 << 40
t.dims[1] = 1 << 40
m = model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [X], [Y], [t])
case("dims overflow", save(m, "dims_overflow.onnx"), "load", "AMP_ERR_OVERFLOW", "'w'")
t = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.ones(6, np.float32).tobytes(), raw=True)
t.dims[0] = 1 << 20
t.dims[1] = 1 << 20
m = model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [X], [Y], [t])
case("huge tensor, tiny data", save(m, "huge_tensor.onnx"), "load", "AMP_ERR_LIMIT", "'w'")
t = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.ones(6, np.float32).tobytes(), raw=True)
t.raw_data = t.raw_data[:20]
m = model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [X], [Y], [t])
case("raw data too short", save(m, "raw_short.onnx"), "load", "AMP_ERR_PARSE", "'w'")
shape = numpy_helper.from_array(np.array([1 << 40, 1 << 40, 1 << 40], np.int64), "s")
m = model([helper.make_node("ConstantOfShape", ["s"], ["y"], name="huge_fill")], [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
case("product of dims overflows", save(m, "shape_overflow.onnx"), "run", "AMP_ERR_OVERFLOW", "huge_fill", "")
m = model([helper.make_node("Relu", ["x"], ["y"], name="r")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1] * 9)], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
case("rank too large", save(m, "rank9.onnx"), "load", "AMP_ERR_UNSUPPORTED", "rank 9")
W = numpy_helper.from_array(np.ones((4, 5, 3, 3), np.float32), "w")
m = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_bad_channels")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [W])
tensor_file("x1388.pb", np.linspace(-1, 1, 192, dtype=np.float32).reshape(1, 3, 8, 8), "x")
case("conv channel mismatch", save(m, "conv_channels.onnx"), "run", "AMP_ERR_SHAPE", "conv_bad_channels", "x=x1388.pb")
m = model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape_bad")], [X],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(np.array([4, 2], np.int64), "s")])
case("reshape wrong count", save(m, "reshape_count.onnx"), "run", "AMP_ERR_SHAPE", "reshape_bad", "x=x23.pb")
idx = numpy_helper.from_array(np.array([0, 7], np.int64), "i")
m = model([helper.make_node("Gather", ["x", "i"], ["y"], name="gather_oob", axis=0)], [X],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [idx])
case("gather index out of range", save(m, "gather_oob.onnx"), "run", "AMP_ERR_INVALID_ARG", "gather_oob", "x=x23.pb")

# ops given impossible attributes, shapes or dtypes (each message names the node)
def bad_op(name, file, node, inputs, inits=(), stage="run", status="?", feed="x=x23.pb", opset=17,
           out_type=None):
    m = model([node], inputs, [helper.make_tensor_value_info("y", out_type or TensorProto.FLOAT, None)],
              list(inits), opset=opset)
    case(name, save(m, file), stage, status, node.name, feed)


i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
f32 = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)
bad_op("concat axis out of range", "concat_axis.onnx", helper.make_node("Concat", ["x", "x"], ["y"], name="concat_bad", axis=5), [X],
       status="AMP_ERR_INVALID_GRAPH")
bad_op("transpose repeated perm", "transpose_perm.onnx", helper.make_node("Transpose", ["x"], ["y"], name="transpose_bad", perm=[0, 0]), [X],
       status="AMP_ERR_INVALID_GRAPH")
bad_op("reshape two -1", "reshape_two_neg.onnx", helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape_two"), [X], [i64("s", [-1, -1])],
       status="AMP_ERR_INVALID_GRAPH")
bad_op("slice zero step", "slice_step0.onnx", helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="slice_zero"), [X],
       [i64("st", [0]), i64("en", [2]), i64("ax", [1]), i64("sp", [0])], status="AMP_ERR_INVALID_GRAPH")
bad_op("matmul inner dims differ", "matmul_dims.onnx", helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul_bad"), [X],
       [f32("w", np.ones((2, 3)))], status="AMP_ERR_SHAPE")
bad_op("softmax axis out of range", "softmax_axis.onnx", helper.make_node("Softmax", ["x"], ["y"], name="softmax_bad", axis=4), [X],
       status="AMP_ERR_INVALID_GRAPH")
bad_op("split sizes do not add up", "split_sizes.onnx", helper.make_node("Split", ["x", "sp"], ["y", "z"], name="split_bad", axis=1), [X],
       [i64("sp", [1, 1])], status="AMP_ERR_SHAPE")
bad_op("tile negative repeats", "tile_neg.onnx", helper.make_node("Tile", ["x", "r"], ["y"], name="tile_bad"), [X],
       [i64("r", [1, -2])], status="AMP_ERR_INVALID_GRAPH")
bad_op("expand incompatible shape", "expand_shape.onnx", helper.make_node("Expand", ["x", "s"], ["y"], name="expand_bad"), [X],
       [i64("s", [3, 3])], status="AMP_ERR_SHAPE")
bad_op("pad removes more than the dim", "pad_neg.onnx", helper.make_node("Pad", ["x", "p"], ["y"], name="pad_bad"), [X],
       [i64("p", [0, -5, 0, 0])], status="AMP_ERR_SHAPE")
bad_op("constant of shape negative dim", "cos_neg.onnx", helper.make_node("ConstantOfShape", ["s"], ["y"], name="cos_neg"), [],
       [i64("s", [2, -3])], status="AMP_ERR_INVALID_GRAPH", feed="")
bad_op("range with zero delta", "range_zero.onnx", helper.make_node("Range", ["a", "b", "d"], ["y"], name="range_zero"), [],
       [f32("a", 0.0), f32("b", 5.0), f32("d", 0.0)], status="AMP_ERR_INVALID_ARG", feed="")
bad_op("cast to a string", "cast_string.onnx", helper.make_node("Cast", ["x"], ["y"], name="cast_str", to=TensorProto.STRING), [X],
       status="AMP_ERR_UNSUPPORTED")
bad_op("gemm with integer weights", "gemm_int.onnx", helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm_int"), [X],
       [i64("w", np.ones((3, 2), np.int64))], status="AMP_ERR_SHAPE")
bad_op("opset beyond the table", "opset99.onnx", helper.make_node("Relu", ["x"], ["y"], name="relu_new"), [X],
       status="AMP_ERR_UNSUPPORTED", opset=99)
bad_op("convolution kernel larger than input", "conv_big_kernel.onnx", helper.make_node("Conv", ["x", "w"], ["y"], name="conv_big"),
       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], [f32("w", np.ones((4, 3, 9, 9)))],
       status="AMP_ERR_SHAPE", feed="x=x1388.pb")
bad_op("max pool with a zero kernel", "maxpool_k0.onnx", helper.make_node("MaxPool", ["x"], ["y"], name="pool_k0", kernel_shape=[0, 0]),
       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], status="AMP_ERR_INVALID_GRAPH", feed="x=x1388.pb")
bad_op("unsqueeze repeated axes", "unsqueeze_dup.onnx", helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="unsqueeze_dup"), [X],
       [i64("a", [1, 1])], status="AMP_ERR_INVALID_GRAPH")
bad_op("gather axis out of range", "gather_axis.onnx", helper.make_node("Gather", ["x", "i"], ["y"], name="gather_axis", axis=3), [X],
       [i64("i", [0])], status="AMP_ERR_INVALID_GRAPH")
bad_op("where shapes do not broadcast", "where_bcast.onnx", helper.make_node("Where", ["c", "x", "z"], ["y"], name="where_bad"), [X],
       [numpy_helper.from_array(np.array([True, False], bool), "c"), f32("z", np.ones((2, 3)))], status="AMP_ERR_SHAPE")
bad_op("layer norm axis out of range", "ln_axis.onnx", helper.make_node("LayerNormalization", ["x", "g"], ["y"], name="ln_bad", axis=3),
       [X], [f32("g", np.ones(3))], status="AMP_ERR_INVALID_GRAPH")
bad_op("batch norm scale of the wrong size", "bn_scale.onnx",
       helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn_bad"),
       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
       [f32("g", np.ones(5)), f32("b", np.zeros(3)), f32("m", np.zeros(3)), f32("v", np.ones(3))], status="AMP_ERR_SHAPE",
       feed="x=x1388.pb")
bad_op("flatten axis out of range", "flatten_axis.onnx", helper.make_node("Flatten", ["x"], ["y"], name="flatten_bad", axis=7), [X],
       status="AMP_ERR_INVALID_GRAPH")
bad_op("reduce axes out of range", "reduce_axes.onnx", helper.make_node("ReduceSum", ["x", "a"], ["y"], name="reduce_bad"), [X],
       [i64("a", [4])], status="AMP_ERR_INVALID_GRAPH")
bad_op("squeeze a dim that is not 1", "squeeze_dim.onnx", helper.make_node("Squeeze", ["x", "a"], ["y"], name="squeeze_bad"), [X],
       [i64("a", [1])], status="AMP_ERR_SHAPE")
bad_op("depth to space with a blocksize that does not divide", "d2s.onnx",
       helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s_bad", blocksize=2),
       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], status="AMP_ERR_SHAPE", feed="x=x1388.pb")
bad_op("an op amprt does not have", "unsupported_op.onnx",
       helper.make_node("Multinomial", ["x"], ["y"], name="multinomial0", sample_size=2), [X], stage="session",
       status="AMP_ERR_UNSUPPORTED", out_type=TensorProto.INT32)
bad_op("softmax over integers", "softmax_int.onnx", helper.make_node("Softmax", ["a"], ["y"], name="softmax_int"), [],
       [i64("a", [[1, 2], [3, 4]])], status="AMP_ERR_UNSUPPORTED", feed="", out_type=TensorProto.INT64)
bad_op("one-hot with a negative depth", "onehot_depth.onnx", helper.make_node("OneHot", ["i", "d", "v"], ["y"], name="onehot_bad"),
       [], [i64("i", [0, 1]), i64("d", [-3]), f32("v", [0.0, 1.0])], status="AMP_ERR_SHAPE", feed="")
bad_op("pad with an unknown mode", "pad_mode.onnx", helper.make_node("Pad", ["x", "p"], ["y"], name="pad_mode", mode="bogus"), [X],
       [i64("p", [0, 1, 0, 1])], status="AMP_ERR_INVALID_GRAPH")

# the newer op families
X4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
bad_op("einsum with an output label no input has", "einsum_label.onnx",
       helper.make_node("Einsum", ["x", "x"], ["y"], name="einsum_bad", equation="ij,ij->q"), [X],
       status="AMP_ERR_INVALID_GRAPH")
bad_op("resize with an unknown mode", "resize_mode.onnx",
       helper.make_node("Resize", ["x", "", "s"], ["y"], name="resize_bad", mode="bogus"), [X],
       [f32("s", [1.0, 2.0])], status="AMP_ERR_INVALID_GRAPH")
bad_op("top-k larger than the axis", "topk_k.onnx", helper.make_node("TopK", ["x", "k"], ["y", "yi"], name="topk_bad"),
       [X], [i64("k", [5])], status="AMP_ERR_INVALID_ARG")
bad_op("gather-nd index out of range", "gathernd_oob.onnx",
       helper.make_node("GatherND", ["x", "i"], ["y"], name="gathernd_oob"), [X], [i64("i", [[0, 5]])],
       status="AMP_ERR_INVALID_ARG")
bad_op("scatter-nd index out of range", "scatternd_oob.onnx",
       helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="scatternd_oob"), [X],
       [i64("i", [[-3]]), f32("u", [[1.0, 2.0, 3.0]])], status="AMP_ERR_INVALID_ARG")
bad_op("group norm with groups that do not divide the channels", "groupnorm_groups.onnx",
       helper.make_node("GroupNormalization", ["x", "sc", "b"], ["y"], name="groupnorm_bad", num_groups=2), [X4],
       [f32("sc", [1.0, 1.0]), f32("b", [0.0, 0.0])], status="AMP_ERR_SHAPE", feed="x=x1388.pb", opset=18)
bad_op("lstm weights of another hidden size", "lstm_hidden.onnx",
       helper.make_node("LSTM", ["xs", "w", "r"], ["y"], name="lstm_bad", hidden_size=4), [],
       [f32("xs", np.ones((1, 2, 3)).tolist()), f32("w", np.ones((1, 12, 3)).tolist()),
        f32("r", np.ones((1, 16, 4)).tolist())], status="AMP_ERR_SHAPE", feed="")

# found by fuzzing: a node whose outputs were lost (the graph's output is its input)
m = model([helper.make_node("Relu", ["x"], [], name="relu_no_outputs")], [X], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])])
case("node without outputs", save(m, "no_outputs.onnx"), "run", "AMP_ERR_INVALID_GRAPH", "relu_no_outputs", "x=x23.pb")

# run-time inputs
tensor_file("x23.pb", np.array([[1, -2, 3], [-4, 5, -6]], np.float32), "x")
tensor_file("x32.pb", np.array([[1, -2], [3, -4], [5, -6]], np.float32), "x")
tensor_file("x23_int.pb", np.array([[1, -2, 3], [-4, 5, -6]], np.int64), "x")
tensor_file("x3.pb", np.array([1, 2, 3], np.float32), "x")
save(good, "relu23.onnx", check=True)
case("wrong input shape", "relu23.onnx", "run", "AMP_ERR_SHAPE", "'x'", "x=x32.pb")
case("wrong input dtype", "relu23.onnx", "run", "AMP_ERR_SHAPE", "'x'", "x=x23_int.pb")
case("wrong input rank", "relu23.onnx", "run", "AMP_ERR_SHAPE", "'x'", "x=x3.pb")
case("missing input", "relu23.onnx", "run", "AMP_ERR_INVALID_ARG", "'x'", "")
with open(os.path.join(HERE, "truncated_tensor.pb"), "wb") as f:
    f.write(open(os.path.join(HERE, "x23.pb"), "rb").read()[:-7])
case("truncated tensor file", "relu23.onnx", "run", "AMP_ERR_PARSE", "truncated_tensor.pb", "x=truncated_tensor.pb")

# external data
os.makedirs(os.path.join(HERE, "ext"), exist_ok=True)
def ext_model(location, length=24, fname=None, offset="0", dims=(2, 3)):
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return model([helper.make_node("Add", ["x", "w"], ["y"], name="add_ext")], [X], [Y], [t])
with open(os.path.join(HERE, "ext", "weights.bin"), "wb") as f:
    f.write(np.arange(1, 7, dtype=np.float32).tobytes())
with open(os.path.join(HERE, "ext", "short.bin"), "wb") as f:
    f.write(np.arange(1, 4, dtype=np.float32).tobytes())
with open(os.path.join(HERE, "outside.bin"), "wb") as f:
    f.write(np.arange(1, 7, dtype=np.float32).tobytes())
save(ext_model("weights.bin"), "ext/good_external.onnx")
case("external data, good (control)", "ext/good_external.onnx", "run", "AMP_OK", "", "x=x23.pb")
save(ext_model("missing.bin"), "ext/missing_external.onnx")
case("missing external-data file", "ext/missing_external.onnx", "load", "AMP_ERR_IO", "missing.bin")
save(ext_model("../outside.bin"), "ext/escape_dotdot.onnx")
case("external data path with ..", "ext/escape_dotdot.onnx", "load", "AMP_ERR_INVALID_ARG", "leaves the model's folder")
save(ext_model("/etc/passwd"), "ext/escape_absolute.onnx")
case("absolute external data path", "ext/escape_absolute.onnx", "load", "AMP_ERR_INVALID_ARG", "leaves the model's folder")
link = os.path.join(HERE, "ext", "link.bin")
if os.path.lexists(link):
    os.remove(link)
os.symlink("../outside.bin", link)
save(ext_model("link.bin"), "ext/escape_symlink.onnx")
case("external data symlink leaving the folder", "ext/escape_symlink.onnx", "load", "AMP_ERR_INVALID_ARG", "outside the model's folder")
save(ext_model("short.bin"), "ext/short_external.onnx")
case("external data file too short", "ext/short_external.onnx", "load", "AMP_ERR_PARSE", "short.bin")

# loader (issue 15): nesting depth, strict external-data fields, file kinds
def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)
def pb_field(num, payload):
    return pb_varint(num << 3 | 2) + pb_varint(len(payload)) + payload
relu = model([helper.make_node("Relu", ["x"], ["y"], name="relu_deep")], [X], [Y]).SerializeToString()
# a value_info whose type is a sequence of sequences ... 10,000 deep (20,000 messages: protobuf-c
# alone overflows an 8 MB stack), merged into
# the graph by appending a second ModelProto.graph (protobuf concatenation merges)
t = pb_field(1, bytes([8, 1]))  # TypeProto.tensor_type { elem_type: FLOAT }
for _ in range(10000):
    t = pb_field(4, pb_field(1, t))  # TypeProto.sequence_type { elem_type: t }
vi = pb_field(1, b"deep") + pb_field(2, t)
with open(os.path.join(HERE, "deep_type.onnx"), "wb") as f:
    f.write(relu + pb_field(7, pb_field(13, vi)))
case("type nested 20,000 levels", "deep_type.onnx", "load", "AMP_ERR_LIMIT", "deeper than 64")
def nested_ifs(levels, name):
    """A model whose graph holds an If whose then_branch holds an If ... levels deep."""
    g = b""
    for _ in range(levels):
        attr = pb_field(1, b"then_branch") + pb_varint(20 << 3) + bytes([5]) + pb_field(6, g)  # type GRAPH
        g = pb_field(1, pb_field(4, b"If") + pb_field(5, attr))
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(relu + pb_field(7, g))
nested_ifs(1700, "deep_graph.onnx")
case("graph attributes nested 1,700 levels", "deep_graph.onnx", "load", "AMP_ERR_LIMIT", "deeper than 64")
# a length that runs past its message
with open(os.path.join(HERE, "overlong_field.onnx"), "wb") as f:
    f.write(relu + pb_varint(7 << 3 | 2) + pb_varint(1000) + b"\x0a\x00")
case("field length past the end of the file", "overlong_field.onnx", "load", "AMP_ERR_PARSE", "not a valid protobuf")


for label, off in (("abc", "abc"), ("-1", "-1"), ("12x", "12x"), ("overflow", "99999999999999999999"), ("empty", "")):
    fname = f"ext/offset_{label}.onnx"
    save(ext_model("weights.bin", offset=off), fname)
    case(f"external data offset '{off}'", fname, "load", "AMP_ERR_PARSE", f"offset '{off}' is not a non-negative integer")
save(ext_model("weights.bin", length="24 "), "ext/length_space.onnx")
case("external data length with a trailing space", "ext/length_space.onnx", "load", "AMP_ERR_PARSE", "length '24 ' is not")
with open(os.path.join(HERE, "ext", "w..v2.bin"), "wb") as f:
    f.write(np.arange(1, 7, dtype=np.float32).tobytes())
save(ext_model("w..v2.bin"), "ext/dots_in_name.onnx")
case("external data file named w..v2.bin (control)", "ext/dots_in_name.onnx", "run", "AMP_OK", "", "x=x23.pb")
save(ext_model("sub/../weights.bin"), "ext/dotdot_component.onnx")
case("external data path with a .. component", "ext/dotdot_component.onnx", "load", "AMP_ERR_INVALID_ARG", "leaves the model's folder")
os.makedirs(os.path.join(HERE, "ext", "adir"), exist_ok=True)
with open(os.path.join(HERE, "ext", "adir", "README"), "w") as f:
    f.write("a folder named as external data by ext/dir_external.onnx\n")
save(ext_model("adir"), "ext/dir_external.onnx")
case("external data that is a directory", "ext/dir_external.onnx", "load", "AMP_ERR_IO", "is a directory")
case("a directory as the model", "ext", "load", "AMP_ERR_IO", "is a directory")
# 2^28 floats declared, backed by nothing or by 48 bytes: refused before any allocation
with open(os.path.join(HERE, "ext", "tiny48.bin"), "wb") as f:
    f.write(bytes(48))
save(ext_model("missing_huge.bin", length=str(4 << 28), dims=(1 << 28,)), "ext/huge_missing.onnx")
case("2^28 floats of missing external data", "ext/huge_missing.onnx", "load", "AMP_ERR_IO", "missing_huge.bin")
save(ext_model("tiny48.bin", length=str(4 << 28), dims=(1 << 28,)), "ext/huge_short.onnx")
case("2^28 floats of external data in a 48-byte file", "ext/huge_short.onnx", "load", "AMP_ERR_PARSE", "too short")

# graph attributes 19 deep (59 levels) pass the depth check and reach the importer
nested_ifs(19, "nested_graph_ok.onnx")
case("graph attributes nested 19 levels (under the depth cap)", "nested_graph_ok.onnx", "load", "AMP_ERR_UNSUPPORTED", "then_branch")

# a TensorProto that carries the loader's own raw_data marker (field 536870911): ignored
tp = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3]).SerializeToString()
forged = pb_field(536870911, (0).to_bytes(8, "little") + (24).to_bytes(8, "little"))
with open(os.path.join(HERE, "forged_marker.onnx"), "wb") as f:
    f.write(relu + pb_field(7, pb_field(5, tp + forged)))
case("tensor with a forged raw-data marker", "forged_marker.onnx", "load", "AMP_ERR_PARSE", "0 bytes of data")

# validation: typed attributes, declared types and shapes, opset imports, memory before allocation
CASES.append("# validation (issue 15)")


def validation_cases():
    def one(nodes, inputs, outputs, inits=(), opset=17, value_info=()):
        m = model(nodes, inputs, outputs, inits, opset)
        m.graph.value_info.extend(value_info)
        return m

    Yany = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    X4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    # attributes of the wrong kind: an error, never their default
    m = one([helper.make_node("Softmax", ["x"], ["y"], name="softmax_float_axis", axis=1.0)], [X], [Yany])
    case("softmax axis given as a float", save(m, "attr_softmax_axis.onnx"), "run", "AMP_ERR_INVALID_GRAPH",
         "attribute 'axis' is FLOAT, expected INT", "x=x23.pb")
    m = one([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_float_strides", strides=[2.0, 2.0])], [X4], [Yany], [w])
    case("conv strides given as floats", save(m, "attr_conv_strides.onnx"), "run", "AMP_ERR_INVALID_GRAPH",
         "attribute 'strides' is FLOATS, expected INTS", "x=x1388.pb")
    m = one([helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky_int_alpha", alpha=1)], [X], [Yany])
    case("leaky relu alpha given as an int", save(m, "attr_leaky_alpha.onnx"), "run", "AMP_ERR_INVALID_GRAPH",
         "attribute 'alpha' is INT, expected FLOAT", "x=x23.pb")
    m = one([helper.make_node("Transpose", ["x"], ["y"], name="transpose_str_perm", perm="10")], [X], [Yany])
    case("transpose perm given as a string", save(m, "attr_transpose_perm.onnx"), "run", "AMP_ERR_INVALID_GRAPH",
         "attribute 'perm' is STRING, expected INTS", "x=x23.pb")
    # declared types and shapes that disagree with what the graph computes
    relu = [helper.make_node("Relu", ["x"], ["y"], name="relu0")]
    m = one(relu, [X], [helper.make_tensor_value_info("y", TensorProto.INT64, [7, 7, 7])])
    case("output declared int64 [7,7,7], computes float [2,3]", save(m, "declared_out_type.onnx"), "run",
         "AMP_ERR_INVALID_GRAPH", "graph output 'y' is declared int64 but computes as float32", "x=x23.pb")
    m = one(relu, [X], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])])
    case("output declared [3,2], computes [2,3]", save(m, "declared_out_shape.onnx"), "run", "AMP_ERR_INVALID_GRAPH",
         "graph output 'y' is declared with shape [3,2] but computes as [2,3]", "x=x23.pb")
    m = one(relu, [X], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    case("output declared with another rank", save(m, "declared_out_rank.onnx"), "run", "AMP_ERR_INVALID_GRAPH",
         "declared with shape [2] but computes as [2,3]", "x=x23.pb")
    m = one(relu, [X], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])])
    case("output with symbolic and unknown dims (control)", save(m, "declared_out_sym.onnx", check=True), "run",
         "AMP_OK", "", "x=x23.pb")
    two = [helper.make_node("Relu", ["x"], ["h"], name="relu_h"), helper.make_node("Neg", ["h"], ["y"], name="neg_y")]
    m = one(two, [X], [Y], value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT16, [2, 3])])
    case("value_info declared float16, computes float32", save(m, "declared_value_info.onnx"), "run",
         "AMP_ERR_INVALID_GRAPH", "value 'h' is declared float16 but computes as float32", "x=x23.pb")
    # opset imports
    m = model(relu, [X], [Y], opset=-5)
    case("opset -5", save(m, "opset_negative.onnx"), "load", "AMP_ERR_INVALID_GRAPH", "has version -5; versions start at 1")
    m = model(relu, [X], [Y], opset=0)
    case("opset 0", save(m, "opset_zero.onnx"), "load", "AMP_ERR_INVALID_GRAPH", "has version 0")
    m = model(relu, [X], [Y])
    m.opset_import.append(helper.make_opsetid("", 13))
    case("default domain imported twice", save(m, "opset_twice.onnx"), "load", "AMP_ERR_INVALID_GRAPH",
         "domain 'ai.onnx' is imported at versions 17 and 13")
    # declared sizes against the memory limit (8 GiB by default), before anything is allocated
    shape = i64("shape", [1 << 28, 2, 3])  # 1.6e9 floats: under the element limit, 6 GiB each
    m = one([helper.make_node("Expand", ["x", "shape"], ["e"], name="expand_big"),
             helper.make_node("Add", ["e", "e"], ["y"], name="add_big")], [X], [Yany], [shape])
    case("two live 6 GiB tensors", save(m, "memory_arena.onnx"), "run", "AMP_ERR_LIMIT",
         "over the memory limit of 8589934592; the largest tensor is 'e'", "x=x23.pb")
    big = helper.make_tensor("value", TensorProto.DOUBLE, [1], [0.0])
    m = one([helper.make_node("ConstantOfShape", ["n"], ["y"], name="fill_big", value=big)], [], [Yany],
            [i64("n", [1 << 31])])
    case("a 16 GiB constant", save(m, "memory_constant.onnx"), "run", "AMP_ERR_LIMIT",
         "node 'fill_big': output 'y' needs 17179869184 bytes, over the memory limit", "")
    # a 2^27-float declared input (the file is tiny): planning it for the declared shape must be
    # refused before the 512 MiB arena exists (tests/test_ir.c plans it under a 64 MiB limit)
    xb = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1 << 27])
    save(one([helper.make_node("Neg", ["x"], ["y"], name="neg_big")], [xb], [Yany]), "declared_big_input.onnx")


validation_cases()

# fuzzing (issue 15): an Einsum equation with '>' but no "->" (read past a NULL arrow)
CASES.append("# fuzz findings (issue 15)")
case("einsum '>' without '->'", save(model([helper.make_node("Einsum", ["x"], ["y"], name="einsum_gt", equation="ij>ji")],
                                          [X], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [], opset=17),
                                    "fuzz_einsum_gt.onnx"), "run", "AMP_ERR_INVALID_GRAPH", "stray '>'", "x=x23.pb")

# loader (typed fields): large packed float_data / double_data are read in place, still
# counted against the dims and only for their own dtype; the typed marker cannot be forged
CASES.append("# typed fields read in place (issue 15)")


def typed_field_cases():
    def one_init(t, name):
        return save(model([], [], [helper.make_tensor_value_info(t.name, t.data_type, None)], [t]), name)

    t = TensorProto(name="wf", data_type=TensorProto.FLOAT, dims=[32, 32])
    t.float_data.extend([0.5] * 1025)  # 4100 bytes packed: one float too many
    case("packed float_data longer than its dims", one_init(t, "typed_float_count.onnx"), "load", "AMP_ERR_PARSE",
         "tensor 'wf': 4100 bytes of data for 1024 elements of")
    t = TensorProto(name="wd", data_type=TensorProto.DOUBLE, dims=[1024])
    t.double_data.extend([0.25] * 1000)
    case("packed double_data shorter than its dims", one_init(t, "typed_double_count.onnx"), "load", "AMP_ERR_PARSE",
         "tensor 'wd': 8000 bytes of data for 1024 elements of")
    t = TensorProto(name="wi", data_type=TensorProto.INT64, dims=[1024])
    t.float_data.extend([1.0] * 1024)
    case("packed float_data on an int64 tensor", one_init(t, "typed_float_on_int64.onnx"), "load", "AMP_ERR_PARSE",
         "tensor 'wi': 0 bytes of data for 1024 elements of int64")
    # the marker the walk writes for float_data (kind 4, offset, length, elements before)
    tp = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3]).SerializeToString()
    forged = pb_field(536870911, bytes([4]) + (0).to_bytes(8, "little") + (24).to_bytes(8, "little") + bytes(8))
    with open(os.path.join(HERE, "forged_typed_marker.onnx"), "wb") as f:
        f.write(relu + pb_field(7, pb_field(5, tp + forged)))
    case("tensor with a forged float_data marker", "forged_typed_marker.onnx", "load", "AMP_ERR_PARSE",
         "tensor 'w': 0 bytes of data for 6 elements of")


typed_field_cases()

with open(os.path.join(HERE, "cases.txt"), "w") as f:
    f.write("# name|file|stage|status|message fragment|inputs (generated by make_bad.py)\n")
    f.write("\n".join(CASES) + "\n")
print(f"{len(CASES)} cases")
