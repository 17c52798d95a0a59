"""purechat.v1's reading calls: Chat.History, Chat.Search and Chat.Conversations.

Each decodes its request, asks server/reading.py (which decides who may read what, for
every door) and answers with the proto's response; a refusal is its status and sentence.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.core import Identity
from purechat.errors import PurechatError, StoreError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import reading
from purechat.server.accounts import answer
from purechat.server.reading import HistoryAsk, SearchAsk
from purechat.server.services import Services
from purechat.server.wire import v1_event
from purechat.status import Status
from purechat.transport import Stream

READS = frozenset({"History", "Search", "Conversations"})


async def serve_read(stream: Stream, method: str, services: Services, identity: Identity) -> Status:
    raw = await stream.receive() or b""
    try:
        if method == "History":
            request = v1.HistoryRequest.FromString(raw)
            page = await reading.history(
                services,
                identity,
                HistoryAsk(
                    room=request.room,
                    dm=request.dm,
                    before=request.before if request.HasField("before") else None,
                    after=request.after if request.HasField("after") else None,
                    around=request.around if request.HasField("around") else None,
                    limit=request.limit,
                ),
            )
            return await answer(
                stream,
                v1.HistoryResponse(
                    room=page.room,
                    epoch=page.epoch,
                    last_seq=page.last_seq,
                    events=[v1_event(event) for event in page.events],
                    more_before=page.more_before,
                    more_after=page.more_after,
                    peer=page.peer,
                ),
            )
        if method == "Search":
            asked = v1.SearchRequest.FromString(raw)
            results = await reading.search(
                services,
                identity,
                SearchAsk(asked.text, asked.room, asked.dm, asked.limit, asked.page),
            )
            found = [
                v1.SearchResponse.Found(event=v1_event(f.message), marks=list(f.marks), peer=f.peer)
                for f in results.found
            ]
            return await answer(stream, v1.SearchResponse(found=found, next=results.next))
        v1.ConversationsRequest.FromString(raw)
        listed = await reading.conversations(services, identity)
        entries = [
            v1.ConversationsResponse.Entry(
                room=e.room,
                peer=e.peer,
                last_seq=e.last_seq,
                read_seq=e.read_seq,
                unread=e.unread,
                mentions=e.mentions,
            )
            for e in listed.entries
        ]
        return await answer(stream, v1.ConversationsResponse(entries=entries))
    except DecodeError:
        return statuses.undecodable(f"purechat.v1.{method}Request")
    except StoreError as error:
        services.store_failed(error, f"a {method.lower()} request")
        return statuses.for_error(error)
    except PurechatError as refused:
        return statuses.for_error(refused)
