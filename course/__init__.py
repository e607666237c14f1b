"""The course: from a scalar autograd to a GPT you trained yourself, as exercises that check themselves.

    python -m course                 the exercises, and how far you are
    python -m course check 3         check exercise 3 (your file course/exercises/ex03_*.py)
    python -m course check           check every exercise, ending in a score line

The course imports the framework (tinygrad_proust) and the framework never imports the course.
"""
