class IngestError(Exception):
    """The upload cannot become a dataset; the message names the entry, file or classes at fault.

    `report` carries what was learnt before failing (skipped files, counts), shown to the user.
    """

    def __init__(self, message: str, *, report: dict | None = None):
        super().__init__(message)
        self.message = message
        self.report = report or {}
