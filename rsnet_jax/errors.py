"""The one exception type for problems a user can cause (bad data, bad config, bad paths)."""


class UserError(Exception):
  """A problem in the user's input. ``main`` prints its message (one line per problem), no
  traceback, and exits non-zero."""

  def __init__(self, problems: str | list[str]):
    self.problems = [problems] if isinstance(problems, str) else list(problems)
    super().__init__('\n'.join(self.problems))
