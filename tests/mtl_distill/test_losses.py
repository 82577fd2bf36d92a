"""Teacher (Eq. 13) and student (Eq. 14) losses against values computed by hand in NumPy."""

import math

import numpy as np
import pytest
import torch

from mtl_distill import (
    BinnedRegressionTask,
    MultiClassTask,
    MultiLabelTask,
    RegressionTask,
    student_loss,
    teacher_loss,
)

torch.set_num_threads(1)

AU = MultiLabelTask("au", num_labels=3)
EXPR = MultiClassTask("expr", num_classes=4)
VA = BinnedRegressionTask("va", num_dims=2, num_bins=5)  # edges -1, -.6, -.2, .2, .6, 1
TASKS = [AU, EXPR, VA]
CENTERS = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])


# -- NumPy reference, written from the paper's equations --------------------------------------------------
def log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def log_softmax(x, temperature=1.0):
    z = x / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def bce(y, s):  # Eq. 2 with z = sigmoid(s)
    return -np.sum(y * log_sigmoid(s) + (1 - y) * log_sigmoid(-s))


def ce(p, log_q):  # Eq. 3
    return -np.sum(p * log_q)


def ccc(y, p):  # Eq. 8, population statistics
    cov = np.mean((y - y.mean()) * (p - p.mean()))
    return 2 * cov / (y.var() + p.var() + (y.mean() - p.mean()) ** 2)


def va_bin(value):
    return min(int(np.floor((np.clip(value, -1, 1) + 1) / 0.4)), 4)


def supervision(task, s, y):
    if task is AU:
        return bce(y, s)
    if task is EXPR:
        return -log_softmax(s)[int(y)]
    return sum(-log_softmax(s[5 * i : 5 * i + 5])[va_bin(y[i])] for i in range(2))


def distillation(task, s, t, temperature):
    if task is AU:
        return bce(1 / (1 + np.exp(-t)), s)
    if task is EXPR:
        return ce(np.exp(log_softmax(t, temperature)), log_softmax(s, temperature))
    return sum(
        ce(
            np.exp(log_softmax(t[5 * i : 5 * i + 5], temperature)),
            log_softmax(s[5 * i : 5 * i + 5], temperature),
        )
        for i in range(2)
    )


def ccc_term(s, y, mask):
    if mask.sum() < 2:
        return 0.0
    s, y = s[mask], np.clip(y[mask], -1, 1)
    expected = np.stack([np.exp(log_softmax(s[:, 5 * i : 5 * i + 5])) @ CENTERS for i in range(2)], axis=1)
    return sum(1 - ccc(y[:, i], expected[:, i]) for i in range(2))


def reference_teacher(outputs, targets, masks):
    total = 0.0
    for task in TASKS:
        s, y, m = (d[task.name].double().numpy() for d in (outputs, targets, masks))
        m = m.astype(bool)
        total += sum(supervision(task, s[n], y[n]) for n in range(len(m)) if m[n])
        if task is VA:
            total += ccc_term(s, y, m)
    return total


def reference_student(student, teacher, targets, masks, lam, temperature):
    total = 0.0
    for task in TASKS:
        s, t, y, m = (d[task.name].double().numpy() for d in (student, teacher, targets, masks))
        m = m.astype(bool)
        for n in range(len(m)):
            h = distillation(task, s[n], t[n], temperature)
            total += lam * supervision(task, s[n], y[n]) + (1 - lam) * h if m[n] else h
        if task is VA:
            total += lam * ccc_term(s, y, m)
    return total


def make_batch(batch_size=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    outputs = {
        task.name: torch.randn(batch_size, task.num_outputs, generator=generator) * 2 for task in TASKS
    }
    targets = {
        "au": torch.randint(0, 2, (batch_size, 3), generator=generator).float(),
        "expr": torch.randint(0, 4, (batch_size,), generator=generator),
        "va": torch.rand(batch_size, 2, generator=generator) * 2 - 1,
    }
    # Mixed labels: row 0 has all three, row 1 two, rows 2-4 one each, row 5 none.
    masks = {
        "au": torch.tensor([True, True, True, False, False, False]),
        "expr": torch.tensor([True, False, False, True, False, False]),
        "va": torch.tensor([True, True, False, False, True, False]),
    }
    return outputs, targets, masks


# -- hand-computed literal values ---------------------------------------------------------------------------
def test_multilabel_teacher_loss_literal():
    outputs = {"au": torch.tensor([[0.0, 2.0, -1.0]])}
    targets = {"au": torch.tensor([[1.0, 0.0, 0.0]])}
    loss = teacher_loss([AU], outputs, targets, {"au": torch.tensor([True])})
    expected = math.log(2) + math.log(1 + math.exp(2)) + math.log(1 + math.exp(-1))
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_multiclass_teacher_loss_literal():
    outputs = {"expr": torch.tensor([[1.0, 2.0, 3.0, 4.0]])}
    loss = teacher_loss([EXPR], outputs, {"expr": torch.tensor([2])}, {"expr": torch.tensor([True])})
    expected = -3.0 + math.log(sum(math.exp(k) for k in (1, 2, 3, 4)))
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_binned_regression_loss_literal_two_samples():
    # Uniform logits: CE = log 5 per dimension; predictions are all 0 so cov = 0 and CCC = 0 per dimension.
    outputs = {"va": torch.zeros(2, 10)}
    targets = {"va": torch.tensor([[0.5, -0.5], [-0.5, 0.1]])}
    loss = teacher_loss([VA], outputs, targets, {"va": torch.tensor([True, True])})
    assert float(loss) == pytest.approx(4 * math.log(5) + 2.0, rel=1e-6)


def test_binned_regression_ccc_term_is_skipped_below_two_labelled_samples():
    outputs = {"va": torch.zeros(2, 10)}
    targets = {"va": torch.tensor([[0.5, -0.5], [float("nan"), 7.0]])}  # row 1 unlabelled: any value
    loss = teacher_loss([VA], outputs, targets, {"va": torch.tensor([True, False])})
    assert float(loss) == pytest.approx(2 * math.log(5), rel=1e-6)


def test_binned_regression_perfect_concordance_adds_nothing():
    # Confident logits on the right bin: the CE is ~0 and the expected values equal the centers exactly.
    logits = torch.full((2, 10), -30.0)
    logits[0, 1] = logits[0, 5 + 3] = logits[1, 3] = logits[1, 5 + 1] = 30.0
    targets = {"va": torch.tensor([[-0.4, 0.4], [0.4, -0.4]])}
    loss = teacher_loss([VA], {"va": logits}, targets, {"va": torch.tensor([True, True])})
    assert float(loss) == pytest.approx(0.0, abs=1e-5)


def test_multilabel_distillation_literal_equation_10():
    # Teacher logit 0 -> soft target 1/2; no temperature in Eq. 10.
    student, teacher = {"au": torch.tensor([[2.0, 0.0, -1.0]])}, {"au": torch.zeros(1, 3)}
    loss = student_loss([AU], student, teacher, {"au": torch.zeros(1, 3)}, {"au": torch.tensor([False])})
    per_logit = [0.5 * (math.log(1 + math.exp(-s)) + math.log(1 + math.exp(s))) for s in (2.0, 0.0, -1.0)]
    assert float(loss) == pytest.approx(sum(per_logit), rel=1e-6)
    scaled = student_loss(
        [AU], student, teacher, {"au": torch.zeros(1, 3)}, {"au": torch.tensor([False])}, temperature=3.0
    )
    assert float(scaled) == pytest.approx(float(loss))


def test_binned_distillation_literal_equation_12():
    # Uniform teacher over 5 bins: CE(uniform, SF(s_i, T)) = logsumexp(s_i / T) - mean(s_i / T) per dim.
    student = torch.tensor([[3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0]])
    loss = student_loss(
        [VA],
        {"va": student},
        {"va": torch.zeros(1, 10)},
        {"va": torch.zeros(1, 2)},
        {"va": torch.tensor([False])},
    )
    # s / T is [2, 0, 0, 0, 0] and [0, 1, 0, 0, 0] with T = 1.5
    expected = (math.log(4 + math.exp(2.0)) - 2.0 / 5) + (math.log(4 + math.exp(1.0)) - 1.0 / 5)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_soft_cross_entropy_includes_the_target_entropy():
    # Student equal to teacher: KL would be 0; the paper's CE is the entropy of SF(t, T).
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]])
    masks = {"expr": torch.tensor([False])}
    loss = student_loss([EXPR], {"expr": logits}, {"expr": logits}, {"expr": torch.tensor([0])}, masks)
    p = np.exp(log_softmax(logits.double().numpy()[0], 1.5))
    assert float(loss) == pytest.approx(-np.sum(p * np.log(p)), rel=1e-6)


def test_student_loss_literal_labelled_multiclass():
    s = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    t = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    loss = student_loss(
        [EXPR], {"expr": s}, {"expr": t}, {"expr": torch.tensor([1])}, {"expr": torch.tensor([True])}, lam=0.6
    )
    # Uniform student: CE against any target distribution is log 4, for the label and the soft label alike.
    assert float(loss) == pytest.approx(0.6 * math.log(4) + 0.4 * math.log(4), rel=1e-6)


# -- the full equations on a mixed batch --------------------------------------------------------------------
def test_teacher_loss_matches_equation_13():
    outputs, targets, masks = make_batch()
    loss = teacher_loss(TASKS, outputs, targets, masks)
    assert loss.shape == ()
    assert float(loss) == pytest.approx(reference_teacher(outputs, targets, masks), rel=1e-5)


@pytest.mark.parametrize(("lam", "temperature"), [(0.6, 1.5), (0.3, 1.0), (1.0, 4.0), (0.0, 0.5)])
def test_student_loss_matches_equation_14(lam, temperature):
    student, targets, masks = make_batch(seed=1)
    teacher, _, _ = make_batch(seed=2)
    loss = student_loss(TASKS, student, teacher, targets, masks, lam=lam, temperature=temperature)
    expected = reference_student(student, teacher, targets, masks, lam, temperature)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_mean_reduction_divides_by_batch_size():
    outputs, targets, masks = make_batch()
    total = teacher_loss(TASKS, outputs, targets, masks)
    assert float(teacher_loss(TASKS, outputs, targets, masks, reduction="mean")) == pytest.approx(
        float(total) / 6, rel=1e-6
    )
    student = student_loss(TASKS, outputs, outputs, targets, masks)
    mean = student_loss(TASKS, outputs, outputs, targets, masks, reduction="mean")
    assert float(mean) == pytest.approx(float(student) / 6, rel=1e-6)


def test_task_weights_scale_each_task():
    outputs, targets, masks = make_batch()
    parts = {task.name: float(teacher_loss([task], outputs, targets, masks)) for task in TASKS}
    weighted = teacher_loss(TASKS, outputs, targets, masks, task_weights={"au": 2.0, "va": 0.0})
    assert float(weighted) == pytest.approx(2 * parts["au"] + parts["expr"], rel=1e-5)
    student_parts = {
        task.name: float(student_loss([task], outputs, outputs, targets, masks)) for task in TASKS
    }
    weighted = student_loss(TASKS, outputs, outputs, targets, masks, task_weights={"expr": 0.5})
    assert float(weighted) == pytest.approx(
        student_parts["au"] + 0.5 * student_parts["expr"] + student_parts["va"], rel=1e-5
    )


def test_t2_scaling_multiplies_only_temperature_softened_distillation():
    student, targets, masks = make_batch(seed=3)
    teacher, _, _ = make_batch(seed=4)
    no_labels = {name: torch.zeros_like(mask) for name, mask in masks.items()}  # only distillation remains
    for task, factor in ((AU, 1.0), (EXPR, 1.5**2), (VA, 1.5**2)):
        plain = student_loss([task], student, teacher, targets, no_labels)
        scaled = student_loss([task], student, teacher, targets, no_labels, t2_scaling=True)
        assert float(scaled) == pytest.approx(factor * float(plain), rel=1e-6)


def test_unlabelled_weight_scales_only_the_distillation_of_samples_without_the_label():
    task = RegressionTask("age", num_dims=2)
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    y = torch.tensor([[1.5, 2.0], [9.0, 9.0]])
    mask = torch.tensor([True, False])
    loss = student_loss(
        [task], {"age": s}, {"age": t}, {"age": y}, {"age": mask}, lam=0.5, unlabelled_weight=0.25
    )
    assert float(loss) == pytest.approx(0.5 * 0.25 + 0.5 * 5.0 + 0.25 * 2.0)
    with pytest.raises(ValueError, match="unlabelled_weight must be >= 0"):
        student_loss([task], {"age": s}, {"age": t}, {"age": y}, {"age": mask}, unlabelled_weight=-1.0)


def test_teacher_share_gives_the_ccc_term_its_share_of_the_teacher_loss():
    # VA is labelled on 3 of the 6 rows: with u = 0.4 the term weighs (3 + 0.4 * 3) / 3 = 1.4 instead of lam.
    student, targets, masks = make_batch(seed=5)
    teacher, _, _ = make_batch(seed=6)
    s, y, m = (d["va"].double().numpy() for d in (student, targets, masks))
    term = ccc_term(s, y, m.astype(bool))
    assert term > 0
    for lam in (0.6, 1.0):
        as_paper = student_loss(TASKS, student, teacher, targets, masks, lam=lam, unlabelled_weight=0.4)
        shared = student_loss(
            TASKS, student, teacher, targets, masks, lam=lam, unlabelled_weight=0.4,
            batch_loss_weight="teacher_share",
        )  # fmt: skip
        assert float(shared - as_paper) == pytest.approx((1.4 - lam) * term, rel=1e-5)
    # Every row labelled: the term has the teacher's weight, 1.
    full = {name: torch.ones_like(mask) for name, mask in masks.items()}
    s_full = ccc_term(s, y, np.ones(len(m), dtype=bool))
    as_paper = student_loss([VA], student, teacher, targets, full, lam=0.6)
    shared = student_loss([VA], student, teacher, targets, full, lam=0.6, batch_loss_weight="teacher_share")
    assert float(shared - as_paper) == pytest.approx(0.4 * s_full, rel=1e-5)
    with pytest.raises(ValueError, match="batch_loss_weight must be one of"):
        student_loss(TASKS, student, teacher, targets, masks, batch_loss_weight="share")


def entropy_confidence(task, t):
    """1 - normalised entropy of the teacher's distribution, from the task's definition."""
    if task is AU:
        p = 1 / (1 + np.exp(-t))
        entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))
        return float(np.mean(1 - entropy / np.log(2)))
    if task is EXPR:
        p = np.exp(log_softmax(t))
        return float(1 + (p * np.log(p)).sum() / np.log(4))
    per_dim = [np.exp(log_softmax(t[5 * i : 5 * i + 5])) for i in range(2)]
    return float(np.mean([1 + (p * np.log(p)).sum() / np.log(5) for p in per_dim]))


def test_teacher_confidence_is_one_minus_the_normalised_entropy():
    teacher, _, _ = make_batch(seed=4)
    for task in TASKS:
        t = teacher[task.name].double()
        expected = [entropy_confidence(task, row) for row in t.numpy()]
        np.testing.assert_allclose(task.teacher_confidence(t).numpy(), expected, rtol=1e-9)
    # Uniform: 0; one outcome certain: 1 (to float precision).
    assert float(EXPR.teacher_confidence(torch.zeros(1, 4))[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(EXPR.teacher_confidence(torch.tensor([[60.0, 0.0, 0.0, 0.0]]))[0]) == pytest.approx(1.0)
    assert float(AU.teacher_confidence(torch.tensor([[-60.0, 60.0, 60.0]]))[0]) == pytest.approx(1.0)
    assert float(VA.teacher_confidence(torch.zeros(1, 10))[0]) == pytest.approx(0.0, abs=1e-6)
    # A task without a distribution is sure of every sample.
    assert RegressionTask("age", num_dims=2).teacher_confidence(torch.randn(3, 2)).tolist() == [1.0, 1.0, 1.0]


def test_confidence_weights_each_soft_label_by_the_teachers_confidence_over_the_batch_mean():
    student, targets, masks = make_batch(seed=7)
    teacher, _, _ = make_batch(seed=8)
    lam, temperature = 0.6, 1.5
    expected = 0.0
    for task in TASKS:
        s, t, y, m = (d[task.name].double().numpy() for d in (student, teacher, targets, masks))
        m = m.astype(bool)
        confidence = np.array([entropy_confidence(task, row) for row in t])
        weight = confidence / confidence.mean()
        for n in range(len(m)):
            h = weight[n] * distillation(task, s[n], t[n], temperature)
            expected += lam * supervision(task, s[n], y[n]) + (1 - lam) * h if m[n] else 0.4 * h
        if task is VA:
            expected += lam * ccc_term(s, y, m)
    double = {name: value.double() for name, value in student.items()}
    loss = student_loss(
        TASKS, double, teacher, targets, masks, lam=lam, temperature=temperature, unlabelled_weight=0.4,
        soft_label_weight="confidence",
    )  # fmt: skip
    assert float(loss) == pytest.approx(expected, rel=1e-9)
    # The weights only move the distillation between samples: where the teacher is equally sure of every
    # sample (here: every logit row the same), the loss is the uniform one.
    same = {name: value[:1].expand_as(value).clone() for name, value in teacher.items()}
    uniform = student_loss(TASKS, student, same, targets, masks, unlabelled_weight=0.4)
    weighted = student_loss(
        TASKS, student, same, targets, masks, unlabelled_weight=0.4, soft_label_weight="confidence"
    )
    assert float(weighted) == pytest.approx(float(uniform), rel=1e-6)
    # A teacher that is unsure of everything (confidence 0) leaves the weights at 1, not at 0 / 0.
    flat = {name: torch.zeros_like(value) for name, value in teacher.items()}
    uniform = student_loss(TASKS, student, flat, targets, masks)
    weighted = student_loss(TASKS, student, flat, targets, masks, soft_label_weight="confidence")
    assert torch.isfinite(weighted)
    assert float(weighted) == pytest.approx(float(uniform), rel=1e-6)
    with pytest.raises(ValueError, match="soft_label_weight must be one of"):
        student_loss(TASKS, student, teacher, targets, masks, soft_label_weight="entropy")


def test_regression_task_losses():
    task = RegressionTask("age", num_dims=2)
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    y = torch.tensor([[1.5, 2.0], [9.0, 9.0]])
    mask = torch.tensor([True, False])
    assert float(teacher_loss([task], {"age": s}, {"age": y}, {"age": mask})) == pytest.approx(0.25)
    loss = student_loss([task], {"age": s}, {"age": t}, {"age": y}, {"age": mask}, lam=0.5)
    assert float(loss) == pytest.approx(0.5 * 0.25 + 0.5 * 5.0 + 2.0)


# -- robustness ---------------------------------------------------------------------------------------------
def test_task_without_labelled_sample_contributes_exactly_zero():
    outputs, targets, masks = make_batch()
    targets = {
        name: torch.full_like(target, float("nan")) if target.is_floating_point() else target - 99
        for name, target in targets.items()
    }
    none = {name: torch.zeros_like(mask) for name, mask in masks.items()}
    outputs = {name: logits.clone().requires_grad_() for name, logits in outputs.items()}
    loss = teacher_loss(TASKS, outputs, targets, none)
    loss.backward()
    assert loss.item() == 0.0
    for logits in outputs.values():
        assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_unlabelled_nan_targets_do_not_poison_gradients():
    outputs, targets, masks = make_batch()
    for name, target in targets.items():
        if target.is_floating_point():
            target[~masks[name]] = float("nan")
    student = {name: logits.clone().requires_grad_() for name, logits in outputs.items()}
    loss = student_loss(TASKS, student, outputs, targets, masks)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(logits.grad).all() for logits in student.values())


def test_extreme_logits_stay_finite():
    outputs = {name: torch.full_like(logits, 1e4) for name, logits in make_batch()[0].items()}
    outputs["expr"][:, 0] = -1e4
    _, targets, masks = make_batch()
    student = {name: (-logits).requires_grad_() for name, logits in outputs.items()}
    for loss in (
        teacher_loss(TASKS, student, targets, masks),
        student_loss(TASKS, student, outputs, targets, masks),
    ):
        loss.backward()
        assert torch.isfinite(loss)
    assert all(torch.isfinite(logits.grad).all() for logits in student.values())


def test_teacher_outputs_receive_no_gradient():
    outputs, targets, masks = make_batch()
    teacher = {name: logits.clone().requires_grad_() for name, logits in outputs.items()}
    student = {name: logits.clone().requires_grad_() for name, logits in outputs.items()}
    student_loss(TASKS, student, teacher, targets, masks).backward()
    assert all(logits.grad is None for logits in teacher.values())
    assert all(logits.grad is not None for logits in student.values())


def test_half_precision_teacher_cache_is_accepted():
    outputs, targets, masks = make_batch()
    cached = {name: logits.half() for name, logits in outputs.items()}
    loss = student_loss(TASKS, outputs, cached, targets, masks)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(
        float(student_loss(TASKS, outputs, outputs, targets, masks)), rel=1e-2
    )


def test_inputs_are_not_modified():
    outputs, targets, masks = make_batch()
    targets["va"][0] = torch.tensor([3.0, -3.0])  # clipped inside the loss, not in the caller's tensor
    copies = [{name: value.clone() for name, value in d.items()} for d in (outputs, targets, masks)]
    student_loss(TASKS, outputs, outputs, targets, masks)
    for original, copy in zip((outputs, targets, masks), copies, strict=True):
        assert all(torch.equal(original[name], copy[name]) for name in copy)


def test_gradcheck_teacher_and_student():
    outputs, targets, masks = make_batch(batch_size=6, seed=5)
    teacher = {name: logits.double() for name, logits in outputs.items()}
    names = [task.name for task in TASKS]
    inputs = tuple(torch.randn_like(teacher[name]).requires_grad_() for name in names)

    def teacher_fn(*logits):
        return teacher_loss(TASKS, dict(zip(names, logits, strict=True)), targets, masks)

    def student_fn(*logits):
        student = dict(zip(names, logits, strict=True))
        return student_loss(TASKS, student, teacher, targets, masks, t2_scaling=True)

    assert torch.autograd.gradcheck(teacher_fn, inputs)
    assert torch.autograd.gradcheck(student_fn, inputs)


# -- bad input --------------------------------------------------------------------------------------------
def test_missing_task_in_outputs_targets_masks():
    outputs, targets, masks = make_batch()
    for mapping, what in ((outputs, "outputs"), (targets, "targets"), (masks, "masks")):
        broken = {name: value for name, value in mapping.items() if name != "expr"}
        args = [outputs, targets, masks]
        args[["outputs", "targets", "masks"].index(what)] = broken
        with pytest.raises(ValueError, match=rf"{what} has no entry for task\(s\) \['expr'\]"):
            teacher_loss(TASKS, *args)
    with pytest.raises(ValueError, match=r"teacher_outputs has no entry for task\(s\) \['va'\]"):
        student_loss(TASKS, outputs, {"au": outputs["au"], "expr": outputs["expr"]}, targets, masks)


def test_shape_mismatches():
    outputs, targets, masks = make_batch()
    with pytest.raises(
        ValueError, match=r"outputs for task 'va' must have shape \[batch, 10\], got \[6, 9\]"
    ):
        teacher_loss(TASKS, {**outputs, "va": outputs["va"][:, :9]}, targets, masks)
    with pytest.raises(ValueError, match=r"outputs\['expr'\] has batch size 5"):
        teacher_loss(TASKS, {**outputs, "expr": outputs["expr"][:5]}, targets, masks)
    with pytest.raises(ValueError, match=r"teacher_outputs for task 'au' must have shape \[batch, 3\]"):
        student_loss(TASKS, outputs, {**outputs, "au": outputs["au"][:, :2]}, targets, masks)
    with pytest.raises(ValueError, match=r"teacher_outputs\['au'\] has batch size 4"):
        student_loss(TASKS, outputs, {**outputs, "au": outputs["au"][:4]}, targets, masks)
    with pytest.raises(ValueError, match=r"targets for task 'au' must have shape \[6, 3\], got \[6, 2\]"):
        teacher_loss(TASKS, outputs, {**targets, "au": targets["au"][:, :2]}, masks)
    with pytest.raises(ValueError, match=r"targets for task 'va' must have shape \[6, 2\], got \[6\]"):
        teacher_loss(TASKS, outputs, {**targets, "va": targets["va"][:, 0]}, masks)
    with pytest.raises(ValueError, match=r"masks\['au'\] must be a bool tensor of shape \[6\]"):
        teacher_loss(TASKS, outputs, targets, {**masks, "au": masks["au"][:5]})
    with pytest.raises(ValueError, match=r"masks\['au'\] must be a bool tensor"):
        teacher_loss(TASKS, outputs, targets, {**masks, "au": masks["au"].float()})
    with pytest.raises(TypeError, match="must be floating point"):
        teacher_loss(TASKS, {**outputs, "au": outputs["au"].long()}, targets, masks)


def test_class_index_out_of_range_only_matters_where_labelled():
    outputs, targets, masks = make_batch()
    targets["expr"][1] = 17  # row 1 is unlabelled for expr: ignored
    teacher_loss(TASKS, outputs, targets, masks)
    targets["expr"][3] = 4
    with pytest.raises(ValueError, match=r"'expr': class index outside \[0, 3\] at batch row 3: 4"):
        teacher_loss(TASKS, outputs, targets, masks)
    targets["expr"][3] = -1
    with pytest.raises(ValueError, match="class index outside"):
        student_loss(TASKS, outputs, outputs, targets, masks)
    with pytest.raises(TypeError, match="must be integer class indices"):
        teacher_loss(TASKS, outputs, {**targets, "expr": targets["expr"].float()}, masks)


def test_continuous_target_out_of_range_clip_or_error():
    outputs, targets, masks = make_batch()
    targets["va"][4] = torch.tensor([1.7, -0.2])
    clipped = {**targets, "va": targets["va"].clamp(-1, 1)}
    assert float(teacher_loss(TASKS, outputs, targets, masks)) == pytest.approx(
        float(teacher_loss(TASKS, outputs, clipped, masks)), rel=1e-6
    )
    strict = BinnedRegressionTask("va", num_dims=2, num_bins=5, out_of_range="error")
    with pytest.raises(ValueError, match=r"'va': value outside \[low, high\] = \[-1.0, 1.0\] at batch row 4"):
        teacher_loss([AU, EXPR, strict], outputs, targets, masks)
    targets["va"][4, 0] = float("nan")
    with pytest.raises(ValueError, match="'va': targets must be finite at batch row 4"):
        teacher_loss(TASKS, outputs, targets, masks)


def test_multilabel_target_outside_unit_interval():
    outputs, targets, masks = make_batch()
    targets["au"][2, 1] = 2.0
    with pytest.raises(ValueError, match=r"'au': multi-label targets must lie in \[0, 1\] at batch row 2"):
        teacher_loss(TASKS, outputs, targets, masks)


def test_bad_parameters():
    outputs, targets, masks = make_batch()
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean'"):
        teacher_loss(TASKS, outputs, targets, masks, reduction="none")
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        student_loss(TASKS, outputs, outputs, targets, masks, lam=1.2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        student_loss(TASKS, outputs, outputs, targets, masks, temperature=0.0)
    with pytest.raises(ValueError, match=r"task_weights names unknown task\(s\) \['vad'\]"):
        teacher_loss(TASKS, outputs, targets, masks, task_weights={"vad": 1.0})
    with pytest.raises(ValueError, match=r"task_weights\['au'\] must be >= 0"):
        teacher_loss(TASKS, outputs, targets, masks, task_weights={"au": -1.0})
    with pytest.raises(ValueError, match="task names must be unique"):
        teacher_loss([AU, MultiLabelTask("au", 3)], outputs, targets, masks)
    with pytest.raises(ValueError, match="non-empty sequence of Task"):
        teacher_loss([], outputs, targets, masks)
    with pytest.raises(ValueError, match="non-empty sequence of Task"):
        teacher_loss(AU, outputs, targets, masks)
    with pytest.raises(TypeError, match="tasks must hold Task objects"):
        teacher_loss(["au"], outputs, targets, masks)
