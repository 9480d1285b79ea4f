"""One module per page; each has `render(ctx: model.app.scenario.Context) -> None`."""
