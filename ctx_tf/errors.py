"""Exception classes shared across ctx_tf (no dependencies, so every module can import it)."""


class UserError(Exception):
    """A mistake in the user's input, files or configuration.

    The message names the culprit (flag, file, gin binding, class id) and what to do about it;
    the command-line runner (`ctx_tf.cli.run`) prints it as one line and exits with code 2.
    """
