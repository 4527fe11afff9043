"""Typed dependencies: routes take these as parameters (tests may override them)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from serving.reader import OfferReader


# async, so FastAPI calls them on the event loop: a plain ``def`` dependency costs a thread-pool hop per request
async def get_reader(request: Request) -> OfferReader:
    return cast(OfferReader, request.app.state.reader)


ReaderDep = Annotated[OfferReader, Depends(get_reader)]
