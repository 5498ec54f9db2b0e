"""The benchmark tables, mapped for SQLAlchemy (Core uses ``__table__``)."""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from benchmarks.config import server


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "benchapp_author"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    age: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(100))
    joined: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
    rating: Mapped[float] = mapped_column(Float)
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "benchapp_book"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    author_id: Mapped[int] = mapped_column(ForeignKey("benchapp_author.id"))
    pages: Mapped[int] = mapped_column(Integer)
    author: Mapped[Author] = relationship(back_populates="books")


class Entry(Base):
    __tablename__ = "benchapp_entry"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(Integer)


class Item(Base):
    __tablename__ = "benchapp_item"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(20))


def url(db: str) -> URL:
    s = server(db)
    return URL.create(
        "postgresql+asyncpg" if db == "postgresql" else "mysql+asyncmy",
        username=s["USER"],
        password=s["PASSWORD"] or None,
        host=s["HOST"],
        port=int(s["PORT"]),
        database=s["NAME"],
        query={} if db == "postgresql" else {"charset": "utf8mb4"},
    )
