-- measure_school_profile: per school and year, land, buildings, equipment, books and
-- honours (an honour is a count of 1 for the school, so a region's sum counts schools).
-- Inputs: curated_school_profile, curated_enrollment (students, for 生均实践场所面积).
-- Output grain: one row per (year, school_code, measure_id).
with school_profile as (
    select * from curated_school_profile
),

enrollment as (
    select year, school_code, sum(enrolled_count) as enrolled_students_count
    from curated_enrollment
    group by year, school_code
),

per_school as (
    select
        year,
        school_code,
        sum(land_area_m2)::double as land_area_m2,
        sum(building_area_m2)::double as building_area_m2,
        sum(equipment_value_yuan)::double as equipment_value_yuan,
        sum(paper_books_count)::double as paper_books_count,
        sum(coalesce(ebooks_count, 0))::double as ebooks_count,
        max(coalesce(is_national_demo_school, false)::int)::double as national_demo_school_count,
        max(coalesce(is_provincial_demo_school, false)::int)::double
            as provincial_demo_school_count,
        max(coalesce(is_provincial_famous_school, false)::int)::double
            as provincial_famous_school_count,
        max(coalesce(is_provincial_high_level_school, false)::int)::double
            as provincial_high_level_school_count,
        -- Optional (2024 contract): null where a school's file lacks it.
        sum(practice_area_m2)::double as practice_area_m2
    from school_profile
    group by year, school_code
),

with_students as (
    -- 生均实践场所面积's denominator: the students of the schools that report the area.
    select
        per_school.*,
        case when per_school.practice_area_m2 is not null
            then coalesce(enrollment.enrolled_students_count, 0)::double
        end as practice_area_students_count
    from per_school
    left join enrollment using (year, school_code)
),

final as (
    unpivot with_students
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
