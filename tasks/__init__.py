"""SeqIO registrations of the NExT repair tasks; importing this package registers them."""

from tasks import repair  # noqa: F401  (registers tasks and mixtures)
