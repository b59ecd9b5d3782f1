"""The paper-budget projection (iwae.projection) against closed forms of processor sharing."""

import pytest

from iwae.projection import Job, gain_curve, paper_jobs, paper_updates, project, timed_as


def test_the_paper_budget_has_its_jobs_and_updates():
    """14 jobs (12 Table 1 groups, Table 2's two continuations after their parents); 3,280 epochs of 2,980
    MNIST updates, Table 2 3^7 = 2,187 more; a group holds objectives x seeds models, a continuation seeds."""
    jobs = paper_jobs(seeds=5)
    assert len(jobs) == 14 and sum(j.members for j in jobs) == 12 * 10 + 2 * 5
    assert paper_updates("mnist") == 3_280 * 2_980 and paper_updates("mnist", table2=True) == 2_187 * 2_980
    t2 = [j for j in jobs if j.after]
    assert {j.after for j in t2} == {"mnist L1 K=1", "mnist L1 K=50"} and all(j.members == 5 for j in t2)


def test_jobs_sharing_the_gpu_finish_as_processor_sharing_says():
    """n equal jobs of T hours at once with gain g (each at g/n of its speed) end together at n T / g; a job
    that must wait for another starts when it ends; gain 1 is the jobs one after another."""
    jobs = [Job(f"j{i}", "mnist", 1, 1, 2, updates=3_600_000) for i in range(4)]  # 1 ms per update: 1 h each
    p = project(jobs, lambda j: 1.0, gain=gain_curve({4: 2.0}))
    assert p["train_hours"] == pytest.approx(4.0) and p["shared_hours"] == pytest.approx(4.0 / 2.0)
    assert project(jobs, lambda j: 1.0, gain=lambda n: 1.0)["shared_hours"] == pytest.approx(4.0)
    chain = [jobs[0], Job("after", "mnist", 1, 1, 1, updates=3_600_000, after="j0")]
    assert project(chain, lambda j: 1.0, gain=gain_curve({2: 2.0}))["shared_hours"] == pytest.approx(2.0)
    gain = gain_curve({3: 1.6, 6: 2.2})
    assert gain(1) == 1.0 and gain(2) == pytest.approx(1.3) and gain(12) == 2.2


def test_a_job_without_a_measured_step_is_named_not_guessed():
    jobs = paper_jobs(seeds=1)
    p = project(jobs, lambda j: None if j.after else 1.0, eval_s=lambda j: 36.0)
    assert p["measured"] == 12 and sorted(p["missing"]) == sorted(j.name for j in jobs if j.after)
    assert p["eval_hours"] == pytest.approx(12 * 36.0 / 3600)


@pytest.mark.parametrize("members, expected", [(1, 2), (2, 2), (3, 10), (10, 10), (12, 10)])
def test_a_stack_is_timed_as_the_smallest_measured_stack_at_least_as_large(members, expected):
    assert timed_as([10, 2, 2], members) == expected


def test_nothing_measured_gives_no_size():
    assert timed_as([], 2) is None
