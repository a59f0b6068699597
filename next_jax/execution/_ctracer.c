/* The tracer's event loop in C: the same recording as pyrecorder.py's `Recorder` / `_Frame`, step for step.
 *
 * A Python-level trace function costs CPython a Python call plus a locals-dict round trip (fast locals to
 * the dict before the call, the dict back to fast locals after it) on every event of a traced frame; with
 * the bookkeeping around it, that is most of what tracing a small MBPP call adds. Here the trace function is
 * C (`PyEval_SetTrace`, as coverage.py's CTracer): events of frames that are not the program's cost a
 * pointer lookup, and a line of the program costs one locals refresh and an identity check per local.
 * Rendering stays in Python (`safe_repr`, `render_with_shape`, `unchanged` from saferepr.py and shapes.py,
 * passed in by tracer.py), so both tracers print values identically; tests compare the two tracers' steps.
 *
 * Nothing here may change what the traced program does: every error raised inside the tracer (including
 * a RecursionError or MemoryError from a rendering helper) is cleared and stops recording, and the trace
 * function always reports success to the interpreter.
 *
 * Memory check after a change (AddressSanitizer; the parity tests exercise every event and budget path):
 *   gcc -g -O1 -fsanitize=address -fPIC -shared -I"$(python -c 'import sysconfig;print(sysconfig.get_paths()["include"])')" \
 *       next_jax/execution/_ctracer.c -o next_jax/execution/_ctracer$(python3-config --extension-suffix)
 *   LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
 *       python -m pytest -p no:xdist tests/execution/test_tracer_parity.py tests/execution/test_tracer.py
 * then rebuild normally with `pip install --no-deps -e .`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#define FAST_INT 10000000L

/* The interned event name strings, and the helpers, shared by all recorders. */
static PyObject *str_line, *str_call, *str_return, *str_yield, *str_exception;
static PyObject *str_dot0, *str_return_key, *str_yield_key, *str_exception_key, *str_lambda;
static PyObject *str_f_trace;
static PyObject *str_listcomp, *str_setcomp, *str_dictcomp, *str_genexpr;
static PyObject *SCALARS; /* frozenset of the exact scalar types */
static int YIELD_VALUE_OP = -1;
#define CO_SUSPENDS (0x20 | 0x80 | 0x200)

/* ------------------------------------------------------------------------------------------------ */
/* Per-invocation state (pyrecorder.py's _Frame). */
typedef struct {
    PyObject_HEAD
    PyObject *func;     /* co_qualname */
    PyObject *ordinal;  /* int */
    PyObject *depth;    /* int */
    long depth_value;
    int quiet;
    int suspends;
    PyObject *snap;     /* name -> (value, text, shape) */
    PyObject *still;    /* name -> value (IMMUTABLE entries) */
    int line;           /* -1: no line pending */
    int unwinding;
} FrameState;

static void FrameState_dealloc(FrameState *self) {
    Py_XDECREF(self->func);
    Py_XDECREF(self->ordinal);
    Py_XDECREF(self->depth);
    Py_XDECREF(self->snap);
    Py_XDECREF(self->still);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject FrameStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "next_jax.execution._ctracer.FrameState",
    .tp_basicsize = sizeof(FrameState),
    .tp_dealloc = (destructor)FrameState_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* ------------------------------------------------------------------------------------------------ */
typedef struct {
    PyObject_HEAD
    PyObject *filename;
    Py_ssize_t max_events, max_bytes;
    long max_repr;
    PyObject *max_repr_obj;
    PyObject *root;          /* the frame evaluating the call: stack walks stop there */
    PyObject *previous;      /* the trace function to restore on stop */
    PyObject *settrace;      /* sys.settrace */
    PyObject *safe_repr, *render_with_shape, *unchanged, *immutable, *skip;
    PyTypeObject *step_type; /* a tuple subclass (tracer.py's Step) the steps are made as */
    PyObject *steps;         /* list of (step, line, event, func, depth, frame, changes) */
    Py_ssize_t bytes;
    long frames;
    int stopped;
    int lost;                /* the program replaced the trace function: recording ended early */
    int finished;            /* run() returned: nothing more is recorded, even if the program kept the recorder */
    PyObject *active;        /* frame -> FrameState */
    PyObject *last_return;   /* (value, text, shape) of the latest depth-0 return, or skip */
    PyObject *last_frame;    /* borrowed cache of the latest looked-up frame (valid while in `active`) */
    FrameState *last_state;
} Recorder;

static void recorder_stop(Recorder *rec);

static int Recorder_traverse(Recorder *self, visitproc visit, void *arg) {
    Py_VISIT(self->root);
    Py_VISIT(self->previous);
    Py_VISIT(self->steps);
    Py_VISIT(self->active);
    Py_VISIT(self->last_return);
    return 0;
}

static int Recorder_clear(Recorder *self) {
    Py_CLEAR(self->root);
    Py_CLEAR(self->previous);
    Py_CLEAR(self->steps);
    Py_CLEAR(self->active);
    Py_CLEAR(self->last_return);
    self->last_frame = NULL;
    self->last_state = NULL;
    return 0;
}

static void Recorder_dealloc(Recorder *self) {
    PyObject_GC_UnTrack(self);
    Recorder_clear(self);
    Py_XDECREF(self->filename);
    Py_XDECREF(self->max_repr_obj);
    Py_XDECREF(self->settrace);
    Py_XDECREF(self->safe_repr);
    Py_XDECREF(self->render_with_shape);
    Py_XDECREF(self->unchanged);
    Py_XDECREF(self->immutable);
    Py_XDECREF(self->skip);
    Py_XDECREF(self->step_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The helpers every recorder uses, set once by tracer.py through configure(). */
static PyObject *g_settrace, *g_safe_repr, *g_render_with_shape, *g_unchanged, *g_immutable, *g_skip;
static PyTypeObject *g_step_type;

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *settrace, *safe_repr, *render_with_shape, *unchanged, *immutable, *skip, *step_type;
    if (!PyArg_ParseTuple(args, "OOOOOOO:configure", &settrace, &safe_repr, &render_with_shape, &unchanged,
                          &immutable, &skip, &step_type))
        return NULL;
    if (!PyType_Check(step_type) || !PyType_IsSubtype((PyTypeObject *)step_type, &PyTuple_Type) ||
        ((PyTypeObject *)step_type)->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "step_type must be a tuple subclass without a __dict__");
        return NULL;
    }
#define SET(var, value) Py_INCREF(value); Py_XSETREF(var, value)
    SET(g_settrace, settrace);
    SET(g_safe_repr, safe_repr);
    SET(g_render_with_shape, render_with_shape);
    SET(g_unchanged, unchanged);
    SET(g_immutable, immutable);
    SET(g_skip, skip);
    Py_INCREF(step_type);
    Py_XSETREF(g_step_type, (PyTypeObject *)step_type);
#undef SET
    Py_RETURN_NONE;
}

static int Recorder_init(Recorder *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"filename", "max_events", "max_bytes", "max_repr", "previous", NULL};
    PyObject *filename, *previous;
    Py_ssize_t max_events, max_bytes, max_repr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UnnnO", kwlist, &filename, &max_events, &max_bytes, &max_repr,
                                     &previous))
        return -1;
    if (g_step_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_ctracer.configure() has not been called");
        return -1;
    }
    if (self->steps != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Recorder is initialised once");
        return -1;
    }
#define KEEP(field, value) Py_INCREF(value); self->field = value
    KEEP(filename, filename);
    KEEP(previous, previous);
    KEEP(settrace, g_settrace);
    KEEP(safe_repr, g_safe_repr);
    KEEP(render_with_shape, g_render_with_shape);
    KEEP(unchanged, g_unchanged);
    KEEP(immutable, g_immutable);
    KEEP(skip, g_skip);
    Py_INCREF(g_step_type);
    self->step_type = g_step_type;
    KEEP(last_return, g_skip);
#undef KEEP
    self->max_events = max_events;
    self->max_bytes = max_bytes;
    self->max_repr = (long)max_repr;
    self->max_repr_obj = PyLong_FromSsize_t(max_repr);
    self->steps = PyList_New(0);
    self->active = PyDict_New();
    if (!self->max_repr_obj || !self->steps || !self->active)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Rendering. */

static PyObject *call2(PyObject *fn, PyObject *a, PyObject *b) {
    PyObject *args[2] = {a, b};
    return PyObject_Vectorcall(fn, args, 2, NULL);
}

/* render_with_shape(value): its rendering and shape as new references in *text and *shape; -1 on error. */
static int render_pair(Recorder *rec, PyObject *value, PyObject **text, PyObject **shape) {
    PyObject *pair = call2(rec->render_with_shape, value, rec->max_repr_obj);
    if (pair == NULL)
        return -1;
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_TypeError, "render_with_shape must return (str, shape)");
        return -1;
    }
    *text = PyTuple_GET_ITEM(pair, 0);
    *shape = PyTuple_GET_ITEM(pair, 1);
    Py_INCREF(*text);
    Py_INCREF(*shape);
    Py_DECREF(pair);
    return 0;
}

/* The rendering of a local if it differs from its snapshot `old` (borrowed, may be NULL), else Py_None
 * (a new reference either way); NULL with an exception set on error. Updates snap/still (pyrecorder.py's
 * `_Frame.changed`). */
static PyObject *changed(Recorder *rec, FrameState *st, PyObject *name, PyObject *value, PyObject *old) {
    if (old != NULL) {
        if (PyTuple_GET_ITEM(old, 0) == value) {
            PyObject *shape = PyTuple_GET_ITEM(old, 2);
            if (shape == rec->immutable)
                Py_RETURN_NONE;
            if (shape != Py_None) {
                PyObject *prefix = PyTuple_GET_ITEM(shape, 2);
                PyObject *kids = PyTuple_GET_ITEM(shape, 3);
                int nested = PyObject_IsTrue(kids);
                if (nested < 0)
                    return NULL;
                if (!nested && PyList_CheckExact(value) && PyList_CheckExact(prefix)) {
                    /* A flat list: its length, then the identities of its visible prefix. */
                    Py_ssize_t count = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, 1));
                    if (count == -1 && PyErr_Occurred())
                        return NULL;
                    if (PyList_GET_SIZE(value) == count) {
                        Py_ssize_t n = PyList_GET_SIZE(prefix), i;
                        if (n > count)
                            n = count;
                        for (i = 0; i < n; i++)
                            if (PyList_GET_ITEM(value, i) != PyList_GET_ITEM(prefix, i))
                                break;
                        if (i == n)
                            Py_RETURN_NONE;
                    }
                } else {
                    PyObject *same = PyObject_CallOneArg(rec->unchanged, shape);
                    if (same == NULL)
                        return NULL;
                    int same_value = PyObject_IsTrue(same);
                    Py_DECREF(same);
                    if (same_value < 0)
                        return NULL;
                    if (same_value)
                        Py_RETURN_NONE;
                }
            }
        } else if (old == rec->skip) {
            if (PyDict_SetItem(st->still, name, value) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    PyTypeObject *cls = Py_TYPE(value);
    PyObject *text = NULL, *shape = NULL;
    int scalar = PySet_Contains(SCALARS, (PyObject *)cls);
    if (scalar < 0)
        return NULL;
    if (scalar) {
        int small_int = 0;
        if (cls == &PyLong_Type) {
            int overflow;
            long v = PyLong_AsLongAndOverflow(value, &overflow);
            if (v == -1 && PyErr_Occurred())
                return NULL;
            small_int = !overflow && v > -FAST_INT && v < FAST_INT;
        }
        if (small_int) {
            text = PyObject_Repr(value);
        } else if (cls == &PyLong_Type ||
                   (cls == &PyUnicode_Type && PyUnicode_GET_LENGTH(value) > rec->max_repr) ||
                   (cls == &PyBytes_Type && PyBytes_GET_SIZE(value) > rec->max_repr)) {
            text = call2(rec->safe_repr, value, rec->max_repr_obj);
        } else {
            text = PyObject_Repr(value);
            if (text != NULL && PyUnicode_Check(text) && PyUnicode_GET_LENGTH(text) > rec->max_repr) {
                Py_DECREF(text);
                text = call2(rec->safe_repr, value, rec->max_repr_obj);
            }
        }
        if (text == NULL)
            return NULL;
        shape = rec->immutable;
        Py_INCREF(shape);
    } else if (render_pair(rec, value, &text, &shape) < 0) {
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        Py_DECREF(text);
        Py_DECREF(shape);
        PyErr_SetString(PyExc_TypeError, "a rendering must be a str");
        return NULL;
    }
    PyObject *entry = PyTuple_Pack(3, value, text, shape);
    int failed = entry == NULL || PyDict_SetItem(st->snap, name, entry) < 0;
    Py_XDECREF(entry);
    if (!failed) {
        if (shape == rec->immutable)
            failed = PyDict_SetItem(st->still, name, value) < 0;
        else if (PyDict_Contains(st->still, name) == 1)
            failed = PyDict_DelItem(st->still, name) < 0;
    }
    Py_DECREF(shape);
    if (failed) {
        Py_DECREF(text);
        return NULL;
    }
    if (old != NULL) {
        int same = PyUnicode_Compare(PyTuple_GET_ITEM(old, 1), text);
        if (same == -1 && PyErr_Occurred()) {
            Py_DECREF(text);
            return NULL;
        }
        if (same == 0) {
            Py_DECREF(text);
            Py_RETURN_NONE;
        }
    }
    return text;
}

/* Locals whose rendering changed since the snapshot: a new dict (and their total length in *size). */
static PyObject *diff(Recorder *rec, FrameState *st, PyFrameObject *frame, Py_ssize_t *size) {
    PyObject *locals = PyFrame_GetLocals(frame);
    if (locals == NULL)
        return NULL;
    PyObject *changes = PyDict_New();
    if (changes == NULL || !PyDict_Check(locals)) {
        Py_DECREF(locals);
        Py_XDECREF(changes);
        if (changes != NULL)
            PyErr_SetString(PyExc_TypeError, "frame locals are not a dict");
        return NULL;
    }
    *size = 0;
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(locals, &pos, &name, &value)) {
        PyObject *was = PyDict_GetItemWithError(st->still, name);
        if (was == value)
            continue;
        if (was == NULL && PyErr_Occurred())
            goto error;
        PyObject *old = PyDict_GetItemWithError(st->snap, name);
        if (old == NULL && PyErr_Occurred())
            goto error;
        Py_INCREF(name);
        Py_INCREF(value);
        Py_XINCREF(old);
        PyObject *text = changed(rec, st, name, value, old);
        Py_XDECREF(old);
        Py_DECREF(value);
        if (text == NULL) {
            Py_DECREF(name);
            goto error;
        }
        if (text != Py_None) {
            int bad = PyDict_SetItem(changes, name, text) < 0;
            *size += PyUnicode_GET_LENGTH(text);
            if (bad) {
                Py_DECREF(name);
                Py_DECREF(text);
                goto error;
            }
        }
        Py_DECREF(name);
        Py_DECREF(text);
    }
    Py_DECREF(locals);
    return changes;
error:
    Py_DECREF(locals);
    Py_DECREF(changes);
    return NULL;
}

static int lineno_of(PyFrameObject *frame) {
    int line = PyFrame_GetLineNumber(frame);
    return line < 0 ? 0 : line;
}

/* Append a step unless a budget is spent (then stop). Steals `changes`. Returns -1 on error. */
static int emit(Recorder *rec, FrameState *st, int line, PyObject *event, PyObject *changes, Py_ssize_t size) {
    Py_ssize_t count = PyList_GET_SIZE(rec->steps);
    if (count >= rec->max_events || rec->bytes + size > rec->max_bytes) {
        Py_DECREF(changes);
        recorder_stop(rec);
        return 0;
    }
    /* Made as the step type directly, as tuple.__new__(Step, items) would (it has no fields of its own). */
    PyObject *step = rec->step_type->tp_alloc(rec->step_type, 7);
    PyObject *count_obj = PyLong_FromSsize_t(count), *line_obj = PyLong_FromLong(line);
    if (step == NULL || count_obj == NULL || line_obj == NULL) {
        Py_XDECREF(step);
        Py_XDECREF(count_obj);
        Py_XDECREF(line_obj);
        Py_DECREF(changes);
        return -1;
    }
    Py_INCREF(event);
    Py_INCREF(st->func);
    Py_INCREF(st->depth);
    Py_INCREF(st->ordinal);
    PyTuple_SET_ITEM(step, 0, count_obj);
    PyTuple_SET_ITEM(step, 1, line_obj);
    PyTuple_SET_ITEM(step, 2, event);
    PyTuple_SET_ITEM(step, 3, st->func);
    PyTuple_SET_ITEM(step, 4, st->depth);
    PyTuple_SET_ITEM(step, 5, st->ordinal);
    PyTuple_SET_ITEM(step, 6, changes);
    int result = PyList_Append(rec->steps, step);
    Py_DECREF(step);
    if (result == 0)
        rec->bytes += size;
    return result;
}

/* safe_repr(value) as a new str reference; NULL with an exception set on error. */
static PyObject *render_text(Recorder *rec, PyObject *value) {
    PyObject *text = call2(rec->safe_repr, value, rec->max_repr_obj);
    if (text != NULL && !PyUnicode_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "a rendering must be a str");
        return NULL;
    }
    return text;
}

/* A step whose only change is `key` -> `text` (__return__, __yield__, __exception__). Steals `text`. */
static int emit_single(Recorder *rec, FrameState *st, PyFrameObject *frame, PyObject *event, PyObject *key,
                       PyObject *text) {
    PyObject *changes = PyDict_New();
    if (changes == NULL || PyDict_SetItem(changes, key, text) < 0) {
        Py_XDECREF(changes);
        Py_DECREF(text);
        return -1;
    }
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    Py_DECREF(text);
    return emit(rec, st, lineno_of(frame), event, changes, size);
}

/* Record the line that just ran, with the locals it changed (pyrecorder.py's `_Frame.close`). */
static int close_line(Recorder *rec, FrameState *st, PyFrameObject *frame) {
    Py_ssize_t size;
    PyObject *changes = diff(rec, st, frame, &size);
    if (changes == NULL)
        return -1;
    int line = st->line;
    if (line < 0) {
        if (PyDict_GET_SIZE(changes) == 0) {
            Py_DECREF(changes);
            return 0;
        }
        line = lineno_of(frame);
    }
    st->line = -1;
    return emit(rec, st, line, str_line, changes, size);
}

static FrameState *lookup(Recorder *rec, PyObject *frame) {
    if (frame == rec->last_frame)
        return rec->last_state;
    PyObject *found = PyDict_GetItemWithError(rec->active, frame);
    if (found == NULL)
        return NULL;
    rec->last_frame = frame;
    rec->last_state = (FrameState *)found;
    return (FrameState *)found;
}

static void forget(Recorder *rec) {
    rec->last_frame = NULL;
    rec->last_state = NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Events. */

static int is_comprehension(PyObject *name) {
    return name == str_listcomp || name == str_setcomp || name == str_dictcomp || name == str_genexpr ||
           PyUnicode_Compare(name, str_listcomp) == 0 || PyUnicode_Compare(name, str_setcomp) == 0 ||
           PyUnicode_Compare(name, str_dictcomp) == 0 || PyUnicode_Compare(name, str_genexpr) == 0;
}

static int on_call(Recorder *rec, PyFrameObject *frame) {
    PyCodeObject *code = PyFrame_GetCode(frame);
    int ours = code->co_filename == rec->filename || PyUnicode_Compare(code->co_filename, rec->filename) == 0;
    if (!ours || PyUnicode_Compare(code->co_name, str_lambda) == 0) {
        Py_DECREF(code);
        return 0;
    }
    if (lookup(rec, (PyObject *)frame) != NULL) { /* a suspended generator resumes */
        Py_DECREF(code);
        return 0;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(code);
        return -1;
    }
    /* Depth: one more than the nearest traced caller below the root frame. */
    long depth = 0;
    PyFrameObject *parent = PyFrame_GetBack(frame);
    FrameState *found = NULL;
    while (parent != NULL) {
        found = lookup(rec, (PyObject *)parent);
        if (found != NULL || PyErr_Occurred() || (PyObject *)parent == rec->root)
            break;
        PyFrameObject *up = PyFrame_GetBack(parent);
        Py_DECREF(parent);
        parent = up;
    }
    Py_XDECREF(parent);
    if (PyErr_Occurred()) {
        Py_DECREF(code);
        return -1;
    }
    if (found != NULL)
        depth = found->depth_value + 1;
    FrameState *st = PyObject_New(FrameState, &FrameStateType);
    if (st == NULL) {
        Py_DECREF(code);
        return -1;
    }
    st->func = code->co_qualname;
    Py_INCREF(st->func);
    st->ordinal = PyLong_FromLong(rec->frames++);
    st->depth = PyLong_FromLong(depth);
    st->depth_value = depth;
    st->quiet = is_comprehension(code->co_name);
    st->suspends = (code->co_flags & CO_SUSPENDS) != 0;
    st->snap = PyDict_New();
    st->still = PyDict_New();
    st->line = -1;
    st->unwinding = 0;
    Py_DECREF(code);
    if (!st->ordinal || !st->depth || !st->snap || !st->still ||
        PyDict_SetItem(rec->active, (PyObject *)frame, (PyObject *)st) < 0) {
        Py_DECREF(st);
        return -1;
    }
    Py_DECREF(st); /* `active` holds it */
    forget(rec);
    /* The frame's local trace function, as the Python recorder sets it: if the program puts the recorder back
     * with sys.settrace, CPython's Python-level dispatch then still delivers this frame's events to it. */
    if (PyObject_SetAttr((PyObject *)frame, str_f_trace, (PyObject *)rec) < 0)
        return -1;
    if (st->quiet) /* a 3.11 comprehension's only argument is its iterator, `.0` */
        return PyDict_SetItem(st->snap, str_dot0, rec->skip);
    Py_ssize_t size;
    PyObject *changes = diff(rec, st, frame, &size);
    if (changes == NULL)
        return -1;
    return emit(rec, st, lineno_of(frame), str_call, changes, size);
}

static int on_line(Recorder *rec, FrameState *st, PyFrameObject *frame) {
    if (st->line < 0) {
        if (close_line(rec, st, frame) < 0)
            return -1;
    } else {
        Py_ssize_t size;
        PyObject *changes = diff(rec, st, frame, &size);
        if (changes == NULL)
            return -1;
        if (emit(rec, st, st->line, str_line, changes, size) < 0)
            return -1;
    }
    if (rec->stopped)
        return 0;
    st->line = lineno_of(frame);
    st->unwinding = 0;
    return 0;
}

static int on_return(Recorder *rec, FrameState *st, PyFrameObject *frame, PyObject *value) {
    Py_INCREF(st); /* `active` may drop it below */
    int result = -1;
    Py_ssize_t size;
    PyObject *changes = diff(rec, st, frame, &size);
    if (changes == NULL)
        goto done;
    if (st->line >= 0 || PyDict_GET_SIZE(changes) > 0) {
        int line = st->line >= 0 ? st->line : lineno_of(frame);
        st->line = -1;
        if (emit(rec, st, line, str_line, changes, size) < 0)
            goto done;
    } else {
        Py_DECREF(changes);
    }
    if (st->suspends) {
        int lasti = PyFrame_GetLasti(frame);
        PyCodeObject *code = PyFrame_GetCode(frame);
        PyObject *bytecode = PyCode_GetCode(code);
        Py_DECREF(code);
        if (bytecode == NULL)
            goto done;
        int yielded = lasti >= 0 && lasti < PyBytes_GET_SIZE(bytecode) &&
                      (unsigned char)PyBytes_AS_STRING(bytecode)[lasti] == YIELD_VALUE_OP;
        Py_DECREF(bytecode);
        if (yielded) {
            if (!st->quiet && !rec->stopped) {
                PyObject *text = render_text(rec, value);
                if (text == NULL || emit_single(rec, st, frame, str_yield, str_yield_key, text) < 0)
                    goto done;
            }
            result = 0;
            goto done;
        }
    }
    forget(rec);
    if (rec->active != NULL && PyDict_DelItem(rec->active, (PyObject *)frame) < 0)
        PyErr_Clear();
    if (st->quiet || st->unwinding || rec->stopped) {
        result = 0;
        goto done;
    }
    /* `return result`: diff() has just rendered that very object. */
    PyObject *text = NULL, *shape = NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *entry;
    while (PyDict_Next(st->snap, &pos, &key, &entry)) {
        if (PyTuple_GET_ITEM(entry, 0) == value) {
            text = PyTuple_GET_ITEM(entry, 1);
            shape = PyTuple_GET_ITEM(entry, 2);
            Py_INCREF(text);
            Py_INCREF(shape);
            break;
        }
    }
    if (text == NULL) {
        int scalar = PySet_Contains(SCALARS, (PyObject *)Py_TYPE(value));
        if (scalar < 0)
            goto done;
        if (st->depth_value || scalar) {
            if ((text = render_text(rec, value)) == NULL)
                goto done;
            shape = rec->immutable;
            Py_INCREF(shape);
        } else if (render_pair(rec, value, &text, &shape) < 0) {
            goto done;
        }
    }
    if (st->depth_value == 0) {
        PyObject *last = PyTuple_Pack(3, value, text, shape);
        if (last == NULL) {
            Py_DECREF(text);
            Py_DECREF(shape);
            goto done;
        }
        Py_SETREF(rec->last_return, last);
    }
    Py_DECREF(shape);
    result = emit_single(rec, st, frame, str_return, str_return_key, text);
done:
    Py_DECREF(st);
    return result;
}

static int on_exception(Recorder *rec, FrameState *st, PyFrameObject *frame, PyObject *arg) {
    if (close_line(rec, st, frame) < 0)
        return -1;
    if (rec->stopped) /* close_line() spent a budget: `st` went with the frames the stop forgot */
        return 0;
    st->unwinding = 1;
    PyObject *exc = (PyTuple_Check(arg) && PyTuple_GET_SIZE(arg) >= 2) ? PyTuple_GET_ITEM(arg, 1) : Py_None;
    PyObject *text = render_text(rec, exc);
    return text == NULL ? -1 : emit_single(rec, st, frame, str_exception, str_exception_key, text);
}

static int trace_function(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
    Recorder *rec = (Recorder *)obj;
    if (rec->stopped || rec->finished || rec->active == NULL)
        return 0;
    int result = 0;
    FrameState *st;
    Py_INCREF(rec); /* stop() may drop the interpreter's reference */
    switch (what) {
    case PyTrace_CALL:
        result = on_call(rec, frame);
        break;
    case PyTrace_LINE:
        st = lookup(rec, (PyObject *)frame);
        if (st != NULL)
            result = on_line(rec, st, frame);
        else if (PyErr_Occurred())
            result = -1;
        break;
    case PyTrace_RETURN:
        st = lookup(rec, (PyObject *)frame);
        if (st != NULL)
            result = on_return(rec, st, frame, arg == NULL ? Py_None : arg);
        else if (PyErr_Occurred())
            result = -1;
        break;
    case PyTrace_EXCEPTION:
        st = lookup(rec, (PyObject *)frame);
        if (st != NULL)
            result = on_exception(rec, st, frame, arg);
        else if (PyErr_Occurred())
            result = -1;
        break;
    default:
        break;
    }
    if (result < 0) { /* never let a tracer failure alter the traced program */
        PyErr_Clear();
        recorder_stop(rec);
    }
    Py_DECREF(rec);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Control. */

static void recorder_detach(Recorder *rec) {
    forget(rec);
    if (rec->active == NULL)
        return;
    Py_ssize_t pos = 0;
    PyObject *frame, *state;
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    while (PyDict_Next(rec->active, &pos, &frame, &state))
        if (PyObject_SetAttr(frame, str_f_trace, Py_None) < 0)
            PyErr_Clear();
    PyErr_Restore(exc_type, exc_value, exc_tb);
    PyDict_Clear(rec->active);
}

static void recorder_stop(Recorder *rec) {
    if (rec->stopped)
        return;
    rec->stopped = 1;
    /* Hand the thread back to the previous trace function (None: no tracing). */
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyEval_SetTrace(NULL, NULL);
    if (rec->previous != Py_None) {
        PyObject *r = PyObject_CallOneArg(rec->settrace, rec->previous);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyErr_Restore(exc_type, exc_value, exc_tb);
    recorder_detach(rec);
}

/* run(call_code, namespace): evaluate the call with this recorder installed, then hand the thread back to
 * the previous trace function; returns the call's value or raises what it raised. */
static PyObject *Recorder_run(Recorder *self, PyObject *args) {
    PyObject *code, *namespace;
    if (!PyArg_ParseTuple(args, "O!O!:run", &PyCode_Type, &code, &PyDict_Type, &namespace))
        return NULL;
    if (self->steps == NULL || self->finished) {
        PyErr_SetString(PyExc_RuntimeError, "a Recorder runs once, after initialisation");
        return NULL;
    }
    Py_INCREF(self);
    /* The caller's frame: the call's frame sits right on it, and stack walks stop there. */
    PyObject *caller = (PyObject *)PyEval_GetFrame();
    Py_XINCREF(caller);
    Py_XSETREF(self->root, caller);
    PyEval_SetTrace(trace_function, (PyObject *)self);
    PyObject *value = PyEval_EvalCode(code, namespace, namespace);
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyThreadState *tstate = PyThreadState_Get();
    self->lost = !self->stopped && (tstate->c_tracefunc != trace_function || tstate->c_traceobj != (PyObject *)self);
    self->finished = 1;
    PyEval_SetTrace(NULL, NULL);
    if (self->previous != Py_None) {
        PyObject *r = PyObject_CallOneArg(self->settrace, self->previous);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    recorder_detach(self);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    Py_DECREF(self);
    return value;
}

/* sys.gettrace() returns the recorder while it is installed. A program that puts back what it found
 * (`old = sys.gettrace(); ...; sys.settrace(old)`) installs it as a Python-level trace function; its first
 * call then re-installs the C trace function, so recording goes on as it would with the Python recorder. */
static PyObject *Recorder_call(PyObject *self, PyObject *args, PyObject *kwds) {
    Recorder *rec = (Recorder *)self;
    PyObject *frame, *event, *arg;
    if (kwds != NULL || !PyArg_UnpackTuple(args, "Recorder", 3, 3, &frame, &event, &arg))
        return NULL;
    if (rec->stopped || rec->finished || rec->active == NULL || !PyFrame_Check(frame) || !PyUnicode_Check(event))
        Py_RETURN_NONE;
    PyEval_SetTrace(trace_function, self);
    int what = -1;
    if (PyUnicode_Compare(event, str_call) == 0)
        what = PyTrace_CALL;
    else if (PyUnicode_Compare(event, str_line) == 0)
        what = PyTrace_LINE;
    else if (PyUnicode_Compare(event, str_return) == 0)
        what = PyTrace_RETURN;
    else if (PyUnicode_Compare(event, str_exception) == 0)
        what = PyTrace_EXCEPTION;
    if (what >= 0)
        trace_function(self, (PyFrameObject *)frame, what, arg);
    Py_RETURN_NONE;
}

static PyObject *Recorder_get_stopped(Recorder *self, void *closure) { return PyBool_FromLong(self->stopped); }

static PyObject *Recorder_get_lost(Recorder *self, void *closure) { return PyBool_FromLong(self->lost); }

static PyObject *Recorder_get_steps(Recorder *self, void *closure) {
    if (self->steps == NULL)
        return PyList_New(0);
    Py_INCREF(self->steps);
    return self->steps;
}

static PyObject *Recorder_get_last_return(Recorder *self, void *closure) {
    PyObject *r = self->last_return ? self->last_return : Py_None;
    Py_INCREF(r);
    return r;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(settrace, safe_repr, render_with_shape, unchanged, IMMUTABLE, SKIP, Step): the shared helpers."},
    {NULL},
};

static PyMethodDef Recorder_methods[] = {
    {"run", (PyCFunction)Recorder_run, METH_VARARGS, "Evaluate a compiled call with the recorder installed."},
    {NULL},
};

static PyGetSetDef Recorder_getset[] = {
    {"stopped", (getter)Recorder_get_stopped, NULL, "whether recording has stopped", NULL},
    {"lost", (getter)Recorder_get_lost, NULL, "whether the program replaced the trace function", NULL},
    {"steps", (getter)Recorder_get_steps, NULL, "the recorded step tuples", NULL},
    {"last_return", (getter)Recorder_get_last_return, NULL, "(value, text, shape) of the last top return", NULL},
    {NULL},
};

static PyTypeObject RecorderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "next_jax.execution._ctracer.Recorder",
    .tp_basicsize = sizeof(Recorder),
    .tp_dealloc = (destructor)Recorder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Recorder_traverse,
    .tp_clear = (inquiry)Recorder_clear,
    .tp_call = Recorder_call,
    .tp_methods = Recorder_methods,
    .tp_getset = Recorder_getset,
    .tp_init = (initproc)Recorder_init,
    .tp_new = PyType_GenericNew,
    .tp_doc = "The tracer's event loop in C; see pyrecorder.py's Recorder for what it records.",
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ctracer", "The tracer's event loop in C (see tracer.py).", -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ctracer(void) {
    if (PyType_Ready(&FrameStateType) < 0 || PyType_Ready(&RecorderType) < 0)
        return NULL;
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(str_line, "line");
    INTERN(str_call, "call");
    INTERN(str_return, "return");
    INTERN(str_yield, "yield");
    INTERN(str_exception, "exception");
    INTERN(str_dot0, ".0");
    INTERN(str_return_key, "__return__");
    INTERN(str_yield_key, "__yield__");
    INTERN(str_exception_key, "__exception__");
    INTERN(str_lambda, "<lambda>");
    INTERN(str_f_trace, "f_trace");
    INTERN(str_listcomp, "<listcomp>");
    INTERN(str_setcomp, "<setcomp>");
    INTERN(str_dictcomp, "<dictcomp>");
    INTERN(str_genexpr, "<genexpr>");
#undef INTERN
    SCALARS = PyFrozenSet_New(NULL);
    if (SCALARS == NULL)
        return NULL;
    PyObject *types[] = {(PyObject *)&PyLong_Type, (PyObject *)&PyFloat_Type, (PyObject *)&PyUnicode_Type,
                         (PyObject *)&PyBool_Type, (PyObject *)Py_TYPE(Py_None), (PyObject *)&PyBytes_Type,
                         (PyObject *)&PyComplex_Type};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (PySet_Add(SCALARS, types[i]) < 0)
            return NULL;
    PyObject *opcode = PyImport_ImportModule("opcode");
    if (opcode == NULL)
        return NULL;
    PyObject *opmap = PyObject_GetAttrString(opcode, "opmap");
    Py_DECREF(opcode);
    if (opmap == NULL)
        return NULL;
    PyObject *op = PyDict_GetItemString(opmap, "YIELD_VALUE");
    YIELD_VALUE_OP = op ? (int)PyLong_AsLong(op) : -1;
    Py_DECREF(opmap);
    if (YIELD_VALUE_OP < 0) {
        PyErr_SetString(PyExc_ImportError, "no YIELD_VALUE opcode");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RecorderType);
    if (PyModule_AddObject(m, "Recorder", (PyObject *)&RecorderType) < 0) {
        Py_DECREF(&RecorderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
